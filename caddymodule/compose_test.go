package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestRewritesBeforeSSO: Caddy runs try_files, uri and handle_path's
// prefix strip before sso. Sign-in through such a site completes and
// comes back to the URL the browser asked for, and the endpoints stay
// reachable, because the handler answers for the request as sent.
func TestRewritesBeforeSSO(t *testing.T) {
	t.Run("single-page app with try_files", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("<html>the SPA</html>"), 0o644); err != nil {
			t.Fatal(err)
		}
		w.sites = fmt.Sprintf("%s {\n\troot * %s\n\tsso test\n\ttry_files {path} /index.html\n\tfile_server\n}\n", w.gw.base, root)
		w.start()
		b := newBrowser(t)
		resp := b.signIn(w.gw.base+"/dashboard/settings?tab=2", "ada", "ada-pw")
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "the SPA") ||
			resp.Request.URL.RequestURI() != "/dashboard/settings?tab=2" {
			t.Fatalf("sign-in ended at %s, %s: %.200s", resp.Request.URL, resp.Status, body)
		}
		// The sign-out page, not the SPA's index.
		if body := readBody(t, b.get(w.gw.base+"/.sso/logout")); !strings.Contains(body, `action="/.sso/logout"`) {
			t.Errorf("GET /.sso/logout did not reach the endpoint: %.200s", body)
		}
	})
	t.Run("uri strip_prefix", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		w.sites = fmt.Sprintf("%s {\n\turi strip_prefix /app\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
		w.start()
		resp := newBrowser(t).signIn(w.gw.base+"/app/reports?year=2026", "ada", "ada-pw")
		if saw := upstreamSaw(t, resp); resp.Request.URL.RequestURI() != "/app/reports?year=2026" || saw.Path != "/reports?year=2026" {
			t.Errorf("came back to %s (the upstream got %s), want /app/reports?year=2026", resp.Request.URL, saw.Path)
		}
	})
	t.Run("handle_path with the endpoints under its path", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		w.idp.RegisterClient(oidctest.Client{ID: caddytest.ClientID, Secret: caddytest.ClientSecret,
			RedirectURIs: []string{w.gw.base + "/app/.sso/oidc/test/callback"}})
		w.sites = fmt.Sprintf("%s {\n\thandle_path /app/* {\n\t\tsso test {\n\t\t\tpath_prefix /app/.sso/\n\t\t}\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\trespond \"not the app\" 404\n\t}\n}\n",
			w.gw.base, w.upstream.hostPort())
		w.start()
		b := newBrowser(t)
		// A script is told the login URL of the page it asked for.
		resp := b.get(w.gw.base+"/app/api/items?x=1", "Accept", "application/json")
		if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized ||
			!strings.Contains(body, `"login":"/app/.sso/login?return_to=%2Fapp%2Fapi%2Fitems%3Fx%3D1"`) {
			t.Errorf("401 %s: %s", resp.Status, body)
		}
		resp = b.signIn(w.gw.base+"/app/reports?year=2026", "ada", "ada-pw")
		if saw := upstreamSaw(t, resp); resp.Request.URL.RequestURI() != "/app/reports?year=2026" || saw.header("X-Forwarded-User") == "" {
			t.Errorf("came back to %s, the upstream saw user %q", resp.Request.URL, saw.header("X-Forwarded-User"))
		}
	})
}

// TestTurnEndpointOff: the README's way to turn an endpoint off, an answer
// listed before sso in a route, keeps the gateway from serving it to a
// signed-in person, while the other endpoints and the app are served.
// (A handle block beside a site-level sso is not enough: Caddy orders sso
// before handle.)
func TestTurnEndpointOff(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\troute {\n\t\trespond /.sso/whoami \"whoami is off\" 404\n\t\tsso test\n\t\treverse_proxy %s\n\t}\n}\n",
		w.gw.base, w.upstream.hostPort())
	w.start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/x", "ada", "ada-pw"))
	resp := b.get(w.gw.base + "/.sso/whoami")
	if body := readBody(t, resp); resp.StatusCode != http.StatusNotFound || body != "whoami is off" {
		t.Errorf("whoami, turned off: %s %.200q", resp.Status, body)
	}
	if body := readBody(t, b.get(w.gw.base+"/.sso/logout")); !strings.Contains(body, `action="/.sso/logout"`) {
		t.Errorf("the sign-out page beside it: %.200s", body)
	}
}

// TestNestedSSO: a stricter sso inside a protected site (site-wide sso,
// and allow group admins on /admin/*) admits the session the outer one
// admitted, though the outer took the cookie out of the request: no sign-in
// loop, and the inner rules apply.
func TestNestedSSO(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.idp.AddUser("bob", "bob-pw", map[string]any{
		"sub": "sub-bob", "given_name": "Bob", "family_name": "B",
		"email": "bob@example.com", "email_verified": true, "groups": []string{"eng"},
	})
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\thandle /admin/* {\n\t\tsso test {\n\t\t\tallow group admins\n\t\t}\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}\n}\n",
		w.gw.base, w.upstream.hostPort(), w.upstream.hostPort())
	w.start()

	ada := newBrowser(t) // in admins
	upstreamSaw(t, ada.signIn(w.gw.base+"/", "ada", "ada-pw"))
	saw := upstreamSaw(t, ada.get(w.gw.base+"/admin/x"))
	if saw.Path != "/admin/x" || saw.header("X-Forwarded-User") == "" {
		t.Errorf("an admin's navigation to /admin/x: the upstream got %s as %q", saw.Path, saw.header("X-Forwarded-User"))
	}
	if n := len(auditReasons(t, store.EventLoginSucceeded)); n != 1 {
		t.Errorf("%d sign-ins, want the one", n)
	}

	bob := newBrowser(t) // not in admins
	upstreamSaw(t, bob.signIn(w.gw.base+"/", "bob", "bob-pw"))
	resp := bob.get(w.gw.base+"/admin/x", "Accept", "application/json")
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a non-admin at /admin/x: %s %s", resp.Status, body)
	}
}

// TestNestedSSOHoldsItsIdPs: the session an outer sso admitted passes an
// inner one only if it is of one of the inner route's IdPs (one host,
// several IdPs, docs/security.md): alpha's session is no session on a beta
// route inside alpha's site.
func TestNestedSSOHoldsItsIdPs(t *testing.T) {
	g := newGateway(t)
	alpha := startOP(t, "ada@alpha.example", g.base+"/.sso/oidc/alpha/callback")
	beta := startOP(t, "ada@beta.example", g.base+"/admin/.sso/oidc/beta/callback")
	up := newEchoUpstream(t).hostPort()
	g.start(g.caddyfile(oidcIdPBlock("alpha", alpha)+oidcIdPBlock("beta", beta), fmt.Sprintf(
		"%[1]s {\n\tsso alpha\n\thandle /admin/* {\n\t\tsso beta {\n\t\t\tpath_prefix /admin/.sso/\n\t\t}\n\t\treverse_proxy %[2]s\n\t}\n\thandle {\n\t\treverse_proxy %[2]s\n\t}\n}\n",
		g.base, up)))
	b := newBrowser(t)
	if saw := upstreamSaw(t, b.signIn(g.base+"/", "ada", "ada-pw")); saw.header("X-Forwarded-Idp") != "alpha" {
		t.Fatalf("signed in through %q, want alpha", saw.header("X-Forwarded-Idp"))
	}
	if resp, body := b.noFollow(g.base+"/admin/api", true); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("alpha's session on beta's inner route: %s %s", resp.Status, body)
	}
}
