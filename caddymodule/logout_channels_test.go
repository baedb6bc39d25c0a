package caddymodule_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
)

// logoutWorld is a gateway whose IdP knows its back- and front-channel
// logout URIs, with ada and bob signed in, each in a browser of their own.
type logoutWorld struct {
	*caddytest.OIDC
	t        *testing.T
	ada, bob *browser
	backURI  string
	frontURI string
}

func newLogoutWorld(t *testing.T) *logoutWorld {
	t.Helper()
	o := caddytest.NewOIDC(t, "\t\t\tjit\n")
	w := &logoutWorld{OIDC: o, t: t,
		backURI:  o.GW.Base + "/.sso/oidc/test/backchannel-logout",
		frontURI: o.GW.Base + "/.sso/oidc/test/frontchannel-logout"}
	o.IdP.RegisterClient(oidctest.Client{ID: caddytest.ClientID, Secret: caddytest.ClientSecret,
		RedirectURIs: []string{o.GW.Base + "/.sso/oidc/test/callback"}, BackChannelLogoutURI: w.backURI})
	o.IdP.AddUser("bob", "bob-pw", map[string]any{"sub": "sub-bob", "given_name": "Bob", "family_name": "B",
		"email": "bob@example.com", "email_verified": true})
	o.Start()
	w.ada, w.bob = newBrowser(t), newBrowser(t)
	upstreamSaw(t, w.ada.signIn(o.GW.Base+"/", "ada", "ada-pw"))
	upstreamSaw(t, w.bob.signIn(o.GW.Base+"/", "bob", "bob-pw"))
	return w
}

// signedIn reports whether b's session still reaches the upstream.
func (w *logoutWorld) signedIn(b *browser) bool {
	w.t.Helper()
	resp := b.get(w.GW.Base+"/check", "Accept", "application/json")
	readBody(w.t, resp)
	return resp.StatusCode == http.StatusOK
}

// post sends a logout token to the back-channel logout URI, as the IdP
// does, and returns the status and the refusal's error description.
func (w *logoutWorld) post(token string) (int, string, http.Header) {
	w.t.Helper()
	resp, err := w.IdP.SendBackChannelLogout(context.Background(), w.backURI, token)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	if resp.StatusCode != http.StatusOK && (json.Unmarshal(body, &e) != nil || e.Error == "") {
		w.t.Errorf("refusal %s without a JSON error: %s", resp.Status, body)
	}
	return resp.StatusCode, e.Desc, resp.Header
}

func (w *logoutWorld) logoutToken(edit func(*oidctest.Token)) string {
	w.t.Helper()
	tok := w.IdP.NewLogoutToken(caddytest.ClientID, "ada", w.IdP.SessionID("ada"))
	if edit != nil {
		edit(tok)
	}
	raw, err := w.IdP.SignToken(caddytest.ClientID, tok)
	if err != nil {
		w.t.Fatal(err)
	}
	return raw
}

// TestBackChannelLogoutEndsSession: a signed logout token from the IdP ends
// exactly the session it names before the answer is sent: ada's next
// request is signed out, bob's is not. The session had recorded the IdP's
// sid at sign-in.
func TestBackChannelLogoutEndsSession(t *testing.T) {
	w := newLogoutWorld(t)
	sid := w.IdP.SessionID("ada")
	view(t, func(tx store.Tx) error {
		ss, err := tx.SessionsBySessionID("test", sid)
		if err != nil || len(ss) != 1 || ss[0].Logout.Subject != "sub-ada" {
			t.Errorf("the session did not record the IdP's sid: %v, %v", ss, err)
		}
		return nil
	})
	status, code, h := w.post(w.logoutToken(nil))
	if status != http.StatusOK || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("logout token: %d %s, Cache-Control %q", status, code, h.Get("Cache-Control"))
	}
	if w.signedIn(w.ada) {
		t.Error("ada is still signed in after the back-channel logout")
	}
	if !w.signedIn(w.bob) {
		t.Error("bob was signed out by ada's logout token")
	}
	if got := auditReasons(t, store.EventSessionLoggedOut); !slices.Equal(got, []string{"idp_logout"}) {
		t.Errorf("session.logged_out reasons = %v, want [idp_logout]", got)
	}
}

// TestBackChannelLogoutRefused: an unsigned, a replayed and a
// wrong-audience logout token are each refused with 400, one under a key
// not fetched yet with 503, and none changes anything.
func TestBackChannelLogoutRefused(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// token returns the token to refuse; it may first use one up.
		token func(w *logoutWorld) string
		code  string
	}{
		{"unsigned", func(w *logoutWorld) string {
			return w.logoutToken(func(tok *oidctest.Token) { tok.Alg = "none" })
		}, "logout_token_invalid"},
		// Within 30 s of the world's JWKS fetch an unknown key is not
		// fetched again: 503, which the IdP retries (it might be its new
		// key: idp/oidc TestBackChannelLogoutKeyPendingRetried), and
		// nobody is signed out.
		{"signed by another key", func(w *logoutWorld) string {
			return w.logoutToken(func(tok *oidctest.Token) { tok.Key = otherKey })
		}, "signing_key_pending"},
		{"wrong audience", func(w *logoutWorld) string {
			return w.logoutToken(func(tok *oidctest.Token) { tok.Claims["aud"] = "another-client" })
		}, "logout_token_audience"},
		{"replayed", func(w *logoutWorld) string {
			// bob's token, accepted once; then replayed against a
			// session bob has made since.
			tok := w.IdP.NewLogoutToken(caddytest.ClientID, "bob", "")
			raw, err := w.IdP.SignToken(caddytest.ClientID, tok)
			if err != nil {
				w.t.Fatal(err)
			}
			if status, code, _ := w.post(raw); status != http.StatusOK {
				w.t.Fatalf("first use: %d %s", status, code)
			}
			w.bob = newBrowser(w.t)
			upstreamSaw(w.t, w.bob.signIn(w.GW.Base+"/", "bob", "bob-pw"))
			return raw
		}, "logout_token_replayed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newLogoutWorld(t)
			tok := tc.token(w)
			before := auditReasons(t, store.EventSessionLoggedOut)
			status, code, _ := w.post(tok)
			want := http.StatusBadRequest // final: the IdP does not send the token again
			if tc.code == "signing_key_pending" {
				want = http.StatusServiceUnavailable
			}
			if status != want || code != tc.code {
				t.Errorf("got %d %q, want %d %q", status, code, want, tc.code)
			}
			if !w.signedIn(w.ada) || !w.signedIn(w.bob) {
				t.Error("a refused logout token signed someone out")
			}
			if after := auditReasons(t, store.EventSessionLoggedOut); len(after) != len(before) {
				t.Errorf("a refused logout token was audited as a logout: %v", after)
			}
		})
	}
}

// TestSignOutAtIdPEndsSessionByBackChannel: ada signs out at the IdP
// itself (not through the gateway); the IdP's back-channel logout ends her
// gateway session.
func TestSignOutAtIdPEndsSessionByBackChannel(t *testing.T) {
	w := newLogoutWorld(t)
	resp := w.ada.get(w.IdP.Issuer + oidctest.PathEndSession)
	readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("end_session: %s", resp.Status)
	}
	if w.signedIn(w.ada) {
		t.Error("ada is still signed in at the gateway after signing out at the IdP")
	}
	if !w.signedIn(w.bob) {
		t.Error("bob was signed out")
	}
}

// TestFrontChannelLogout: the IdP's iframe (Entra-style) with the session's
// sid ends that session, and its answer may be framed; a wrong iss is
// refused and ends nothing.
func TestFrontChannelLogout(t *testing.T) {
	w := newLogoutWorld(t)
	sid := w.IdP.SessionID("ada")
	get := func(q url.Values) *http.Response {
		resp, err := http.Get(w.frontURI + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		return resp
	}
	resp := get(url.Values{"iss": {"https://evil.example"}, "sid": {sid}})
	if resp.StatusCode != http.StatusBadRequest || !w.signedIn(w.ada) {
		t.Fatalf("wrong iss: %s, ada signed in %v; want 400 and no change", resp.Status, w.signedIn(w.ada))
	}
	resp = get(url.Values{"iss": {w.IdP.Issuer}, "sid": {sid}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("front-channel logout: %s", resp.Status)
	}
	if xfo, csp := resp.Header.Get("X-Frame-Options"), resp.Header.Get("Content-Security-Policy"); xfo != "" || strings.Contains(csp, "frame-ancestors") {
		t.Errorf("the answer cannot be framed: X-Frame-Options %q, CSP %q", xfo, csp)
	}
	if w.signedIn(w.ada) {
		t.Error("ada is still signed in after the front-channel logout")
	}
	if !w.signedIn(w.bob) {
		t.Error("bob was signed out")
	}
	// Entra sends sid alone.
	bobSID := w.IdP.SessionID("bob")
	if resp := get(url.Values{"sid": {bobSID}}); resp.StatusCode != http.StatusOK || w.signedIn(w.bob) {
		t.Errorf("sid without iss: %s, bob still signed in %v", resp.Status, w.signedIn(w.bob))
	}
}
