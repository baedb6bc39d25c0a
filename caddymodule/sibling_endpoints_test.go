package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestSiblingSSOEndpointsAnsweredElsewhere: one host, /admin/* signs in
// through IdP "other", the rest through "test" (docs/security.md, "One
// host, several IdPs"). With the default path_prefix the /admin sso's
// callback (/.sso/oidc/other/callback) and logout endpoints are routed to
// the sibling handle block, whose sso does not have "other": no sign-in at
// /admin can complete. Caddy says so at start (one ERROR naming the IdP,
// its endpoints and the fix) and so does `caddy sso check` (an error in
// the IdP's block, above the URLs it prints); the refused callback logs a
// WARN once, not a reload that never happened. With the fix, a
// path_prefix of its own, neither says anything and the sign-in
// completes.
func TestSiblingSSOEndpointsAnsweredElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		broken       bool
	}{
		{"the default path_prefix", "", true},
		{"a path_prefix of its own", "\t\t\tpath_prefix /admin/.sso/\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwoIdPWorld(t)
			base := w.gw.base
			w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{
				base + "/.sso/oidc/test/callback", base + "/.sso/oidc/other/callback", base + "/admin/.sso/oidc/other/callback"}})
			sites := fmt.Sprintf(`%[1]s {
	handle /admin/* {
		sso other {
%[3]s		}
		reverse_proxy %[2]s
	}
	handle {
		sso test
		reverse_proxy %[2]s
	}
}
`, base, w.upstream.hostPort(), tc.prefix)
			cf := w.twoIdPCaddyfile("sso test")
			cf = cf[:strings.Index(cf, base+" {")] + sites
			w.gw.start(cf)

			var startErrors []string
			for line := range strings.Lines(w.gw.logs()) {
				if strings.Contains(line, `"level":"error"`) && strings.Contains(line, "IdP other") {
					startErrors = append(startErrors, line)
				}
			}
			if tc.broken && (len(startErrors) != 1 || !strings.Contains(startErrors[0], "/.sso/oidc/other/callback") || !strings.Contains(startErrors[0], "path_prefix of its own")) {
				t.Errorf("start: want one ERROR naming IdP other, its callback and the fix, got %d:\n%s", len(startErrors), strings.Join(startErrors, ""))
			}
			if !tc.broken && len(startErrors) > 0 {
				t.Errorf("start: an ERROR for a layout that works:\n%s", strings.Join(startErrors, ""))
			}

			path := filepath.Join(t.TempDir(), "Caddyfile")
			if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := caddytest.RunCLI(context.Background(), "check", "--config", path)
			block := out[max(strings.Index(out, "IdP other"), 0):]
			block = block[:max(strings.Index(block, "Enter at the IdP"), 0)]
			says := strings.Contains(block, "✗ server srv0: the sso handler of IdP other") && strings.Contains(block, "/.sso/oidc/other/callback")
			if says != tc.broken || (err != nil) != tc.broken {
				t.Errorf("caddy sso check (err %v) reports the misrouted endpoints: %v, want %v:\n%s", err, says, tc.broken, out)
			}

			// A person signs in at /admin.
			b := newBrowser(t)
			stop := *b.Client
			stop.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
				if strings.Contains(req.URL.Path, "/callback") {
					return http.ErrUseLastResponse
				}
				return nil
			}
			b.Client = &stop
			first := b.signIn(base+"/admin/x", "ada", "ada-pw")
			readBody(t, first)
			callback := first.Header.Get("Location")
			if !strings.Contains(callback, "/oidc/other/callback?") {
				t.Fatalf("premise: the IdP sends the browser to %q (%s at %s)", callback, first.Status, first.Request.URL)
			}
			resp := b.get(callback) // as a navigation, through the redirects after it
			body := readBody(t, resp)
			if tc.broken {
				if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "settings changed") {
					t.Fatalf("the callback %s answers %s, want the 404 signin_config_changed page:\n%.300s", callback, resp.Status, body)
				}
				readBody(t, b.get(callback)) // again: still one WARN
				if n := strings.Count(w.gw.logs(), "a callback of an IdP this sso route does not have reached it"); n != 1 {
					t.Errorf("the misrouted callback logged %d WARN lines, want 1:\n%s", n, w.gw.logs())
				}
				return
			}
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/admin/x" {
				t.Errorf("the callback %s ends at %s: %s, want the app at /admin/x", callback, resp.Request.URL.Path, resp.Status)
			}
		})
	}
}
