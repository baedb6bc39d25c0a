//go:build unix

// Unix only: the harness stops Caddy with SIGTERM, which Windows cannot send.

package stresstest_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddyproc"
	"github.com/caddy-sso/caddy-sso/internal/stresstest"
)

// caddyBinary builds cmd/caddy once per test binary.
func caddyBinary(t *testing.T) string {
	t.Helper()
	bin, err := builtCaddy()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var builtCaddy = sync.OnceValues(func() (string, error) { return caddyproc.Build(context.Background()) })

// signInAs registers a user at both IdPs and signs in over OIDC.
func signInAs(ctx context.Context, w *stresstest.World, name string) (*stresstest.Browser, stresstest.Page, error) {
	w.AddUser(stresstest.User{Username: name, Password: "pw", Subject: "sub-" + name, Email: name + "@example.com"})
	b := stresstest.NewBrowser(nil)
	p, err := b.SignIn(ctx, w.Base, stresstest.OIDCName, name, "pw", "/app")
	return b, p, err
}

// refusedStart launches Caddy, expects it to exit with an error within a
// minute without a panic, and returns what it printed on this launch.
func refusedStart(t *testing.T, w *stresstest.World) string {
	t.Helper()
	from := len(w.Caddy.Output())
	if err := w.Caddy.Launch(w.Caddyfile()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Caddy.Exited():
	case <-time.After(time.Minute):
		t.Fatalf("Caddy did not exit:\n%s", tail(w.Caddy.Output()[from:], 4000))
	}
	out := w.Caddy.Output()[from:]
	if w.Caddy.ExitErr() == nil {
		t.Errorf("Caddy exited with status 0:\n%s", out)
	}
	if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
		t.Errorf("Caddy panicked:\n%s", tail(out, 4000))
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	t.Logf("Caddy's last words: %s", lines[len(lines)-1])
	return out
}

// newWorld starts the IdPs and the upstream; configure (may be nil)
// adjusts the World before Caddy starts. Caddy, the IdPs and the upstream
// stop when the test ends, and Caddy's output is logged if it failed.
func newWorld(t *testing.T, configure func(*stresstest.World)) *stresstest.World {
	t.Helper()
	w, err := stresstest.NewWorld(caddyBinary(t), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("closing: %v", err)
		}
		if t.Failed() {
			t.Logf("caddy output (last 6000 bytes):\n%s", tail(w.Caddy.Output(), 6000))
		}
	})
	if configure != nil {
		configure(w)
	}
	return w
}

// startWorld is newWorld with Caddy started and its SAML SP registered.
func startWorld(t *testing.T, configure func(*stresstest.World)) *stresstest.World {
	t.Helper()
	w := newWorld(t, configure)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if err := w.RegisterSP(); err != nil {
		t.Fatal(err)
	}
	return w
}

// checkStore runs `caddy sso check --store` on the World's store (Caddy
// must be stopped) and fails the test on any finding.
func checkStore(t *testing.T, w *stresstest.World) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := w.Caddy.Command(ctx, "sso", "check", "--store", w.Store)
	if err != nil || !strings.Contains(out, "✓") {
		t.Fatalf("caddy sso check --store %s: %v\n%s", w.Store, err, out)
	}
	return out
}

// envInt reads a positive integer setting from the environment, for the
// longer runs of bench/ scripts.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
