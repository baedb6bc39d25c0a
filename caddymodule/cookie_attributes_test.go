package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestSignInCookieAttributes reads the cookies a real sign-in sets, as the
// gateway sends them. The session cookie is HttpOnly (no script reads the
// token), SameSite=Lax (no cross-site POST carries it), Path=/ and without
// Domain (no sibling subdomain receives it). On an https origin, here a
// trusted proxy's X-Forwarded-Proto: https, it is also Secure and named
// with the __Host- prefix, which browsers accept only from a secure origin
// with Path=/ and no Domain, so a sibling subdomain cannot plant one
// (docs/security.md). The flow cookie that binds the sign-in to the
// browser (idp.FlowCookies.Save) follows the same rules: HttpOnly always,
// __Host- and Secure on https.
func TestSignInCookieAttributes(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n").start()
		h := newHandSignIn(t, w, nil, "http")
		start, cb := h.run("/")
		checkFlowCookies(t, start, false)
		checkSessionCookie(t, cb, false)
		upstreamSaw(t, h.gateway(w.gw.base+"/"))
	})

	t.Run("https behind a trusted proxy", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		// The origin the browser sees is https://127.0.0.1:port, so the
		// redirect URI is too.
		w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{
			w.gw.base + "/.sso/oidc/test/callback",
			"https://" + strings.TrimPrefix(w.gw.base, "http://") + "/.sso/oidc/test/callback",
		}})
		w.gw.start(strings.Replace(w.caddyfile(), "\tsso {\n", "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n\tsso {\n", 1))
		h := newHandSignIn(t, w, map[string]string{"X-Forwarded-Proto": "https"}, "https")
		start, cb := h.run("/")
		checkFlowCookies(t, start, true)
		checkSessionCookie(t, cb, true)
		// The cookie is the session: the next request with it (and only
		// it) reaches the upstream.
		upstreamSaw(t, h.gateway(w.gw.base+"/"))
	})
}

// checkCookieScope: Path=/ and no Domain, in the parsed cookie and in the
// header as sent.
func checkCookieScope(t *testing.T, c *http.Cookie) {
	t.Helper()
	if c.Path != "/" {
		t.Errorf("cookie %s: Path %q, want /", c.Name, c.Path)
	}
	if c.Domain != "" || strings.Contains(strings.ToLower(c.Raw), "domain=") {
		t.Errorf("cookie %s has a Domain: %q", c.Name, c.Raw)
	}
}

func checkSessionCookie(t *testing.T, cb *http.Response, secure bool) {
	t.Helper()
	want, other := ssogateway.SessionCookiePlain, ssogateway.SessionCookieSecure
	if secure {
		want, other = other, want
	}
	var got *http.Cookie
	for _, c := range cb.Cookies() {
		switch {
		case c.Name == want:
			got = c
		case c.Name == other && c.MaxAge >= 0:
			t.Errorf("the callback set session cookie %s on this origin (secure %v): %q", c.Name, secure, c.Raw)
		}
	}
	if got == nil {
		t.Fatalf("the callback (%s, Location %q) set no %s cookie: %q", cb.Status, cb.Header.Get("Location"), want, cb.Header.Values("Set-Cookie"))
	}
	if got.Value == "" || got.MaxAge < 0 {
		t.Errorf("session cookie %q is empty or expired", got.Raw)
	}
	if !got.HttpOnly {
		t.Errorf("session cookie is not HttpOnly: %q", got.Raw)
	}
	if got.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie SameSite %v, want Lax: %q", got.SameSite, got.Raw)
	}
	checkCookieScope(t, got)
	if secure && !got.Secure {
		t.Errorf("session cookie on an https origin is not Secure (a __Host- cookie must be): %q", got.Raw)
	}
}

func checkFlowCookies(t *testing.T, start *http.Response, secure bool) {
	t.Helper()
	var n int
	for _, c := range start.Cookies() {
		if !idp.IsFlowCookie(c.Name) || c.MaxAge < 0 {
			continue
		}
		n++
		if !c.HttpOnly {
			t.Errorf("flow cookie is not HttpOnly: %q", c.Raw)
		}
		checkCookieScope(t, c)
		if c.SameSite != http.SameSiteLaxMode {
			t.Errorf("OIDC flow cookie SameSite %v, want Lax (the callback is a top-level GET): %q", c.SameSite, c.Raw)
		}
		if hostPrefixed := strings.HasPrefix(c.Name, "__Host-"); hostPrefixed != secure {
			t.Errorf("flow cookie %s on an origin with secure %v: want the __Host- prefix exactly on https", c.Name, secure)
		}
		if secure && !c.Secure {
			t.Errorf("flow cookie on an https origin is not Secure: %q", c.Raw)
		}
	}
	if n != 1 {
		t.Errorf("the sign-in start set %d flow cookies, want 1: %q", n, start.Header.Values("Set-Cookie"))
	}
}
