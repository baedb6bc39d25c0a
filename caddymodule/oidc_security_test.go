package caddymodule_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// callbackURL walks a sign-in up to the provider's redirect back to the
// gateway and returns that callback URL without following it. The browser
// must already be signed in at the provider.
func (b *browser) callbackURL(w *oidcWorld) string {
	b.t.Helper()
	return b.callbackFrom(w, w.gw.base+"/.sso/login?return_to=/after")
}

// authorizationURL starts a sign-in and returns where the gateway sends the
// browser: the provider's authorization request.
func (b *browser) authorizationURL(w *oidcWorld) string {
	b.t.Helper()
	resp, err := b.noRedirects().Get(w.gw.base + "/.sso/login?return_to=/after")
	if err != nil {
		b.t.Fatal(err)
	}
	readBody(b.t, resp)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, w.idp.Issuer) {
		b.t.Fatalf("sign-in start: %s to %q", resp.Status, loc)
	}
	return loc
}

// callbackFrom follows redirects from next (a sign-in start, or an
// authorization request the provider answers from its session) up to the
// gateway's callback URL, which it returns without requesting it.
func (b *browser) callbackFrom(w *oidcWorld, next string) string {
	b.t.Helper()
	c := b.noRedirects()
	for range 3 {
		resp, err := c.Get(next)
		if err != nil {
			b.t.Fatal(err)
		}
		readBody(b.t, resp)
		loc := resp.Header.Get("Location")
		if loc == "" {
			b.t.Fatalf("%s: %s without Location", next, resp.Status)
		}
		if strings.HasPrefix(loc, w.gw.base+"/.sso/oidc/") {
			return loc
		}
		next = loc
	}
	b.t.Fatal("no callback redirect")
	return ""
}

// flowCookies returns the browser's pending flow cookies for the gateway.
func (b *browser) flowCookies(w *oidcWorld) []*http.Cookie {
	u, _ := url.Parse(w.gw.base)
	var out []*http.Cookie
	for _, c := range b.jar.Cookies(u) {
		if idp.IsFlowCookie(c.Name) {
			out = append(out, c)
		}
	}
	return out
}

// expectRefused completes the callback and checks that the sign-in failed
// with the given reason: a plain error page, no session, an audit event.
func expectRefused(t *testing.T, w *oidcWorld, b *browser, callback, reason string) {
	t.Helper()
	expectRefusedAudited(t, w, b, callback, reason, true)
}

// expectRefusedAudited is expectRefused for a refusal of a sign-in this
// browser began (bound) or not (no valid flow cookie). Anyone can send the
// latter, so they are audited within a budget per minute and marked as
// such (signin.UnboundFlow); one of them, here, is audited.
func expectRefusedAudited(t *testing.T, w *oidcWorld, b *browser, callback, reason string, bound bool) {
	t.Helper()
	before := auditReasons(t, store.EventLoginFailed)
	resp, err := b.noRedirects().Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Sign-in failed") || !strings.Contains(body, reason) {
		t.Fatalf("want a refused sign-in (%s), got %s:\n%s", reason, resp.Status, body)
	}
	for _, c := range resp.Cookies() {
		if strings.Contains(c.Name, "sso_session") && c.MaxAge >= 0 {
			t.Errorf("a refused sign-in set a session cookie")
		}
	}
	// The page names the reason, never the internal error behind it.
	for _, internal := range []string{"go-jose", "crypto/", "oauth2:", "login failed:", "oidc idp"} {
		if strings.Contains(body, internal) {
			t.Errorf("error page reveals internals (%q):\n%s", internal, body)
		}
	}
	var added []store.Event
	view(t, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: store.EventLoginFailed, Limit: 1000})
		if len(events) > len(before) {
			added = events[len(before):]
		}
		return err
	})
	if i := slices.IndexFunc(added, func(e store.Event) bool { return e.Reason == reason }); i < 0 {
		t.Errorf("no login.failed event with reason %s: %+v", reason, added)
	} else if unbound := added[i].Detail["flow"] == signin.UnboundFlow; unbound == bound {
		t.Errorf("the %s event's flow detail is %q, for a sign-in this browser began: %v", reason, added[i].Detail["flow"], bound)
	}
}

func TestOIDCRefusesForgedAndReplayedSignIns(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()

	// One browser signs in at the provider once; later flows reuse that
	// provider session, so each sub-test is one round trip.
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))

	t.Run("replayed state", func(t *testing.T) {
		auth := b.authorizationURL(w)
		cb := b.callbackFrom(w, auth)
		stolen := b.flowCookies(w)
		resp, err := b.noRedirects().Get(cb)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use of the callback: %s", resp.Status)
		}
		// An attacker replays the callback with a copy of the flow
		// cookie: the provider refuses the used code...
		replayer := newBrowser(t)
		u, _ := url.Parse(w.gw.base)
		replayer.jar.SetCookies(u, stolen)
		expectRefused(t, w, replayer, cb, oidc.CodeTokenExchange)
		// ... and with a fresh code for the same authorization request
		// (same state, nonce and PKCE challenge, all of which the copied
		// cookie matches), the state consumed by the first sign-in is
		// what refuses it.
		replayer.jar.SetCookies(u, stolen)
		expectRefused(t, w, replayer, b.callbackFrom(w, auth), oidc.CodeStateReplayed)
	})

	t.Run("reused code", func(t *testing.T) {
		used := b.callbackURL(w)
		resp, err := b.noRedirects().Get(used)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		oldCode := mustQuery(t, used).Get("code")
		fresh, _ := url.Parse(b.callbackURL(w))
		q := fresh.Query()
		q.Set("code", oldCode)
		fresh.RawQuery = q.Encode()
		expectRefused(t, w, b, fresh.String(), oidc.CodeTokenExchange)
	})

	for _, tc := range []struct {
		name, reason string
		hook         func(*oidctest.Token)
	}{
		{"wrong audience", oidc.CodeIDTokenAudience, func(tok *oidctest.Token) { tok.Claims["aud"] = "another-client" }},
		{"expired token", oidc.CodeIDTokenExpired, func(tok *oidctest.Token) {
			tok.Claims["exp"] = time.Now().Add(-10 * time.Minute).Unix()
			tok.Claims["iat"] = time.Now().Add(-70 * time.Minute).Unix()
		}},
		{"wrong nonce", oidc.CodeIDTokenNonce, func(tok *oidctest.Token) { tok.Claims["nonce"] = "not-the-nonce" }},
		{"alg none", oidc.CodeIDTokenSignature, func(tok *oidctest.Token) { tok.Alg = "none" }},
		// Within 30 s of the JWKS fetch ada's sign-in made, an unknown
		// key is not fetched again: refused as pending, not as forged (it
		// might be the IdP's new key; idp/oidc TestKeyRotation), and a
		// refusal all the same.
		{"key the provider does not publish", oidc.CodeSigningKeyPending, func(tok *oidctest.Token) { tok.Key = foreignKey(t) }},
		{"wrong issuer", oidc.CodeIDTokenIssuer, func(tok *oidctest.Token) { tok.Claims["iss"] = "https://evil.example" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.idp.SetHooks(oidctest.Hooks{IDToken: tc.hook})
			defer w.idp.SetHooks(oidctest.Hooks{})
			expectRefused(t, w, b, b.callbackURL(w), tc.reason)
		})
	}

	t.Run("RFC 9207 iss of another issuer", func(t *testing.T) {
		w.idp.SetHooks(oidctest.Hooks{AuthResponse: func(q url.Values) { q.Set("iss", "https://evil.example") }})
		defer w.idp.SetHooks(oidctest.Hooks{})
		expectRefused(t, w, b, b.callbackURL(w), oidc.CodeIssuerMismatch)
	})

	t.Run("callback from another browser", func(t *testing.T) {
		cb := b.callbackURL(w)
		expectRefusedAudited(t, w, newBrowser(t), cb, oidc.CodeFlowMissing, false)
	})
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// foreignKey is an RSA key the provider's JWKS does not list.
func foreignKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestForwardedHeadersNeedTrustedProxy: X-Forwarded-Host and -Proto decide
// the callback URL only when Caddy's trusted_proxies vouch for the peer;
// from anyone else they would let a client steer the IdP's redirect.
func TestForwardedHeadersNeedTrustedProxy(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := newBrowser(t).noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if got := loc.Query().Get("redirect_uri"); got != w.gw.base+"/.sso/oidc/test/callback" {
		t.Errorf("untrusted X-Forwarded-* changed the redirect URI to %q", got)
	}
	for _, c := range resp.Cookies() {
		if c.Secure || strings.HasPrefix(c.Name, "__Secure-") {
			t.Errorf("untrusted X-Forwarded-Proto changed cookie %s", c.Name)
		}
	}
}

// TestNoSecretsInLogs signs in and out with DEBUG logging and looks for the
// client secret, the session token and the authorization code in the logs.
func TestNoSecretsInLogs(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	cb := b.callbackURL(w)
	code := mustQuery(t, cb).Get("code")
	resp, err := b.noRedirects().Get(cb)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	// Also a failed sign-in, whose error detail is logged.
	w.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Claims["aud"] = "x" }})
	expectRefused(t, w, b, b.callbackURL(w), oidc.CodeIDTokenAudience)

	u, _ := url.Parse(w.gw.base)
	var secrets []string
	for _, c := range b.jar.Cookies(u) {
		if strings.Contains(c.Name, "sso_session") {
			secrets = append(secrets, c.Value)
		}
	}
	if len(secrets) == 0 {
		t.Fatal("no session cookie to look for")
	}
	secrets = append(secrets, clientSecret, code)
	logs := w.gw.logs()
	if !strings.Contains(logs, "sign-in refused") {
		t.Fatalf("the logs do not have the refused sign-in; is logging set up? %s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain a secret (%.6s…)", s)
		}
	}
}
