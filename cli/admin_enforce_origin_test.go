package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestCLIAdminEnforceOrigin: an admin endpoint with `enforce_origin`
// refuses every request without an Origin header (403, "client is not
// allowed to access from origin", before the sso module runs). Over TCP
// the CLI sends its own origin, which Caddy allows for the address it
// listens on, so reads and writes go through, by IP address and by
// localhost. Without it, an operator who hardened the admin endpoint as
// Caddy's docs advise could not use `caddy sso` at all.
func TestCLIAdminEnforceOrigin(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n")
	admin := fmt.Sprintf("127.0.0.1:%d", w.GW.AdminPort)
	cfg := strings.Replace(w.Caddyfile(), "admin "+admin+"\n", "admin "+admin+" {\n\t\tenforce_origin\n\t}\n", 1)
	if !strings.Contains(cfg, "enforce_origin") {
		t.Fatalf("the admin option was not found in the test's Caddyfile:\n%s", cfg)
	}
	w.GW.Start(cfg)
	caddytest.AddUsers(t, 2, "origin.example")

	// The endpoint does enforce it: a request without Origin is refused.
	if resp, body := w.GW.Admin(http.MethodGet, "/sso/users"); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "not allowed to access from origin") {
		t.Fatalf("GET /sso/users without Origin: %d %s, want Caddy's 403", resp.StatusCode, body)
	}

	for _, addr := range []string{admin, fmt.Sprintf("localhost:%d", w.GW.AdminPort)} {
		t.Run(addr, func(t *testing.T) {
			var listed []*store.User
			out := mustCLI(t, "users", "list", "--json", "--address="+addr)
			if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 2 {
				t.Fatalf("users list: %d users (%v)\n%s", len(listed), err, out)
			}
			// A write, which Caddy checks the same way.
			id := listed[0].ID
			mustCLI(t, "users", "disable", id, "--address="+addr)
			mustCLI(t, "users", "enable", id, "--address="+addr)
			// The module's own answers still come through.
			if _, err := cli(context.Background(), "users", "show", "nobody", "--address="+addr); err == nil ||
				err.Error() != `user "nobody" not found (HTTP 404 Not Found)` {
				t.Errorf("show of a missing user: %v", err)
			}
			// restore asks Caddy's own /config/ (not the sso API) whether
			// the sso app runs there, with the Origin too: it is refused
			// naming that app's store, not as if no sso app answered.
			backup := filepath.Join(t.TempDir(), "b.jsonl.gz")
			mustCLI(t, "backup", backup, "--address="+addr)
			_, err := cli(context.Background(), "restore", backup, "--address="+addr)
			if want := "a Caddy running the sso app answers at " + addr + ", with the store bolt:" + w.GW.StorePath(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("restore --address=%s: %v, want %q", addr, err, want)
			}
		})
	}
}
