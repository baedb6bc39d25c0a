package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// startOP starts a local OpenID provider with ada (at the email given),
// registered for the gateway's redirect URIs.
func startOP(t *testing.T, email string, redirectURIs ...string) *oidctest.Server {
	t.Helper()
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	op.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: redirectURIs})
	op.AddUser("ada", "ada-pw", map[string]any{
		"sub": "sub-ada", "given_name": "Ada", "family_name": "Lovelace",
		"email": email, "email_verified": true,
	})
	return op
}

// oidcIdPBlock is one idp block of the global sso option.
func oidcIdPBlock(name string, op *oidctest.Server) string {
	return fmt.Sprintf("\t\tidp %s oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t}\n",
		name, op.Issuer, clientID, clientSecret)
}

// noFollow requests rawURL as a navigation (or, with api, as a script's
// fetch) without following redirects.
func (b *browser) noFollow(rawURL string, api bool) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	req.Header.Set("Accept", "text/html")
	if api {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := b.noRedirects().Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, readBody(b.t, resp)
}

// TestRouteAdmitsOnlyItsIdPs: one host, /admin/* protected by beta, /both/*
// by alpha and beta but allowing only alpha's sessions, the rest by alpha.
// A session made through alpha is no session on /admin/*: a navigation
// starts beta's sign-in, an API call gets 401, beta's endpoints are not
// served on alpha's route (nor alpha's on beta's), and after signing in
// through beta the one session cookie of the host holds beta's session.
func TestRouteAdmitsOnlyItsIdPs(t *testing.T) {
	g := newGateway(t)
	alpha := startOP(t, "ada@alpha.example", g.base+"/.sso/oidc/alpha/callback", g.base+"/both/.sso/oidc/alpha/callback")
	beta := startOP(t, "ada@beta.example", g.base+"/admin/.sso/oidc/beta/callback", g.base+"/both/.sso/oidc/beta/callback")
	up := newEchoUpstream(t).hostPort()
	g.start(g.caddyfile(oidcIdPBlock("alpha", alpha)+oidcIdPBlock("beta", beta), fmt.Sprintf(`%[1]s {
	handle /admin/* {
		sso beta {
			path_prefix /admin/.sso/
		}
		reverse_proxy %[2]s
	}
	handle /both/* {
		sso alpha beta {
			path_prefix /both/.sso/
			default_idp alpha
			allow idp alpha
		}
		reverse_proxy %[2]s
	}
	handle {
		sso alpha
		reverse_proxy %[2]s
	}
}
`, g.base, up)))

	b := newBrowser(t)
	if saw := upstreamSaw(t, b.signIn(g.base+"/", "ada", "ada-pw")); saw.header("X-Forwarded-Idp") != "alpha" {
		t.Fatalf("signed in through %q, want alpha", saw.header("X-Forwarded-Idp"))
	}
	betaTokens := beta.Requests(oidctest.PathToken)

	t.Run("alpha's session is no session on beta's route", func(t *testing.T) {
		resp, body := b.noFollow(g.base+"/admin/users", false)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther ||
			!strings.HasPrefix(loc, beta.Issuer) {
			t.Fatalf("navigation to /admin with alpha's session: %s to %q, want beta's sign-in: %s", resp.Status, loc, body)
		}
		if resp, body := b.noFollow(g.base+"/admin/api/users", true); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("API call to /admin with alpha's session: %s: %s", resp.Status, body)
		}
		if resp, body := b.noFollow(g.base+"/admin/.sso/whoami", true); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("whoami on /admin with alpha's session: %s: %s", resp.Status, body)
		}
		if resp, body := b.noFollow(g.base+"/.sso/whoami", true); resp.StatusCode != http.StatusOK {
			t.Errorf("whoami on alpha's route: %s: %s", resp.Status, body)
		}
	})

	t.Run("endpoints serve only the route's IdPs", func(t *testing.T) {
		for _, path := range []string{
			"/.sso/login?idp=beta&return_to=/",
			"/.sso/oidc/beta/callback?code=x&state=y",
			"/admin/.sso/login?idp=alpha&return_to=/admin/",
			"/admin/.sso/oidc/alpha/callback?code=x&state=y",
		} {
			resp, body := newBrowser(t).noFollow(g.base+path, false)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %s, want 404: %s", path, resp.Status, body)
			}
			if len(resp.Cookies()) > 0 {
				t.Errorf("%s set cookies %v", path, resp.Cookies())
			}
		}
		if n := beta.Requests(oidctest.PathToken) - betaTokens; n != 0 {
			t.Errorf("beta's token endpoint got %d requests", n)
		}
	})

	t.Run("allow idp", func(t *testing.T) {
		if saw := upstreamSaw(t, b.get(g.base+"/both/page")); saw.header("X-Forwarded-Idp") != "alpha" {
			t.Errorf("/both with alpha's session: %v", saw.Headers)
		}
	})

	// A callback whose login is gone (the back button after signing in)
	// goes on to / only with a session of that callback's IdP.
	repeatedCallback := func(t *testing.T, wantOn bool) {
		t.Helper()
		resp, body := b.noFollow(g.base+"/.sso/oidc/alpha/callback?code=x&state=y", false)
		if on := resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/"; on != wantOn ||
			!on && (resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "flow_missing")) {
			t.Errorf("repeated callback of alpha: %s to %q (want on to /: %v): %s", resp.Status, resp.Header.Get("Location"), wantOn, body)
		}
		// Its other answer's reason comes in a refused ACS POST's flow
		// cookie: without one (a reload) it is the page with a fixed
		// reference. The URL names nothing it shows, so a link cannot
		// put words on it.
		if resp, body := b.noFollow(g.base+"/.sso/signin-failed?idp=alpha&code=call_0800_helpdesk&reason=call_0800_helpdesk", false); resp.StatusCode != http.StatusBadRequest ||
			!strings.Contains(body, ssogateway.CodeSignInFailedReloaded) || strings.Contains(body, "call_0800_helpdesk") {
			t.Errorf("/.sso/signin-failed with no refused sign-in: %s: %s", resp.Status, body)
		}
	}
	t.Run("a repeated callback with the IdP's session", func(t *testing.T) { repeatedCallback(t, true) })

	t.Run("signing in through the second IdP", func(t *testing.T) {
		if saw := upstreamSaw(t, b.signIn(g.base+"/admin/users", "ada", "ada-pw")); saw.header("X-Forwarded-Idp") != "beta" {
			t.Fatalf("signed in through %q, want beta", saw.header("X-Forwarded-Idp"))
		}
		// One cookie per host: beta's session replaced alpha's, which the
		// sign-in ended.
		resp, body := b.noFollow(g.base+"/", false)
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, alpha.Issuer) {
			t.Errorf("alpha's route after beta's sign-in: %s to %q: %s", resp.Status, loc, body)
		}
		repeatedCallback(t, false)
		// On beta's route, under /admin/, it goes on to the route's
		// home, not the site's.
		if resp, body := b.noFollow(g.base+"/admin/.sso/oidc/beta/callback?code=x&state=y", false); resp.StatusCode != http.StatusSeeOther ||
			resp.Header.Get("Location") != "/admin/" {
			t.Errorf("repeated callback of beta: %s to %q, want on to /admin/: %s", resp.Status, resp.Header.Get("Location"), body)
		}
		// /both admits beta's session, and its rule refuses it.
		if resp, body := b.noFollow(g.base+"/both/page", false); resp.StatusCode != http.StatusForbidden {
			t.Errorf("/both with beta's session: %s: %s", resp.Status, body)
		}
	})

	t.Run("signing out on the other IdP's route", func(t *testing.T) {
		// The session ends, locally only: beta's logout would return to
		// an endpoint this route does not serve.
		req, _ := http.NewRequest(http.MethodPost, g.base+"/.sso/logout", nil)
		resp, err := b.noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are signed out") {
			t.Errorf("logout on alpha's route with beta's session: %s to %q: %s", resp.Status, resp.Header.Get("Location"), body)
		}
		if resp, body := b.noFollow(g.base+"/admin/.sso/whoami", true); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("beta's session after logout: %s: %s", resp.Status, body)
		}
	})
}

// cookieValue returns the value of the browser's cookie of that name for
// rawURL, or "".
func (b *browser) cookieValue(rawURL, name string) string {
	u, _ := url.Parse(rawURL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
