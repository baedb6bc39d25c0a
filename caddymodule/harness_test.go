package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// echoUpstream is the protected app: it answers every request with the
// request's headers as JSON, so tests see exactly what the gateway forwarded.
type echoUpstream struct {
	*httptest.Server
}

type echoed struct {
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

func newEchoUpstream(t testing.TB) *echoUpstream {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	t.Cleanup(srv.Close)
	return &echoUpstream{srv}
}

func (u *echoUpstream) hostPort() string { return strings.TrimPrefix(u.URL, "http://") }

// gateway is a real Caddy, loaded in this process from a Caddyfile, serving
// plain http on a loopback port with its admin endpoint on another.
type gateway struct {
	t         testing.TB
	port      int
	adminPort int
	dir       string // data: store, Caddy storage
	base      string // http://127.0.0.1:port
}

// globalOptions keeps Caddy's side effects inside the test's directory.
func (g *gateway) globalOptions() string {
	return fmt.Sprintf(`	admin 127.0.0.1:%d
	persist_config off
	auto_https off
	http_port %d
	storage file_system %s/caddy
	skip_install_trust
	log {
		output file %s/caddy.log
		level DEBUG
	}
`, g.adminPort, g.port, g.dir, g.dir)
}

func newGateway(t testing.TB) *gateway {
	t.Helper()
	g := &gateway{t: t, port: freePort(t), adminPort: freePort(t), dir: t.TempDir()}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	return g
}

// logs returns everything Caddy logged so far (at DEBUG level).
func (g *gateway) logs() string {
	b, err := os.ReadFile(g.dir + "/caddy.log")
	if err != nil {
		g.t.Fatal(err)
	}
	return string(b)
}

// caddyfile completes a Caddyfile: the sso global block (its body given)
// plus the test's global options, then the sites.
func (g *gateway) caddyfile(ssoBody, sites string) string {
	return "{\n" + g.globalOptions() + "\tsso {\n\t\tstore bolt " + g.dir + "/sso.db\n" + ssoBody + "\t}\n}\n\n" + sites
}

// start loads the config into this process's Caddy and stops it when the
// test ends. Tests that start a gateway must not run in parallel.
func (g *gateway) start(caddyfile string) {
	g.t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		g.t.Fatalf("adapt: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		g.t.Logf("adapt warning: %s", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		g.t.Fatalf("load: %v", err)
	}
	g.t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			g.t.Errorf("stopping caddy: %v", err)
		}
	})
	g.waitReady()
}

// stop stops Caddy and waits until its port is closed: caddy.Stop returns
// once the servers' shutdowns have started, and a server still shutting
// down would take a new connection and then drop it.
func (g *gateway) stop() {
	g.t.Helper()
	if err := caddy.Stop(); err != nil {
		g.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.port))
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatal("caddy still listening after Stop")
}

func (g *gateway) waitReady() {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatal("caddy did not start listening")
}

// reload posts a new Caddyfile to the admin endpoint, as `caddy reload` does.
//
// Caddy stops the old config's servers in goroutines and returns once their
// shutdowns have been started, not finished; for a moment the old server
// may still take a new connection (caddyhttp's App.Stop says so). Tests
// check the new config's behaviour on the next request, so reload gives
// those goroutines a moment to run. Requests during a reload are
// TestReloadKeepsSessionsAndServes's subject, which does not wait.
func (g *gateway) reload(caddyfile string) {
	g.t.Helper()
	if status, body := g.tryReload(caddyfile); status != http.StatusOK {
		g.t.Fatalf("reload: %d: %s", status, body)
	}
	time.Sleep(200 * time.Millisecond)
}

// tryReload posts a new Caddyfile and returns the admin endpoint's answer.
func (g *gateway) tryReload(caddyfile string) (int, string) {
	g.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost,
		fmt.Sprintf("http://127.0.0.1:%d/load", g.adminPort), bytes.NewBufferString(caddyfile))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("reload: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// The old config's server closes its idle keep-alive connections as it
	// stops; start the next requests on fresh ones (requests in flight
	// during a reload are TestReloadKeepsSessionsAndServes's subject).
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	return resp.StatusCode, string(body)
}
