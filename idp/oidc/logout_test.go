package oidc_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// backChannel POSTs a logout token to the provider's back-channel logout
// endpoint and returns the status and the error code of a refusal.
func (e *env) backChannel(form url.Values) (int, string, http.Header) {
	e.t.Helper()
	return e.backChannelBody(form.Encode())
}

// backChannelBody is backChannel with the body as it is: a form no
// url.Values encodes (a malformed pair).
func (e *env) backChannelBody(payload string) (int, string, http.Header) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, e.rp.URL+"/backchannel-logout", strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	if err := e.p.ServeEndpoint(w, req, e.rp.URL+"/", oidc.BackChannelLogoutEndpoint); err != nil {
		e.t.Fatalf("ServeEndpoint: %v", err)
	}
	var body struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	if w.Code != http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
			e.t.Fatalf("refusal %d without a JSON error: %q", w.Code, w.Body.String())
		}
	}
	return w.Code, body.Desc, w.Header()
}

func (e *env) signLogout(tok *oidctest.Token) string {
	e.t.Helper()
	raw, err := e.idp.SignToken(clientID, tok)
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

// TestBackChannelLogout: a valid logout token ends exactly the sessions it
// names, once: its replay is refused and ends nothing.
func TestBackChannelLogout(t *testing.T) {
	e := newEnv(t)
	tok := e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-1"))
	status, code, h := e.backChannel(url.Values{"logout_token": {tok}})
	if status != http.StatusOK || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("valid logout token: %d %s, Cache-Control %q", status, code, h.Get("Cache-Control"))
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test|alice-sub|sid-1"}) {
		t.Errorf("ended %v, want alice's session sid-1", got)
	}
	status, code, _ = e.backChannel(url.Values{"logout_token": {tok}})
	if status != http.StatusBadRequest || code != oidc.CodeLogoutTokenReplayed {
		t.Errorf("replayed: %d %s, want 400 %s", status, code, oidc.CodeLogoutTokenReplayed)
	}
	if n := len(e.ended.list()); n != 1 {
		t.Errorf("the replay ended sessions (%d calls)", n)
	}

	// sub alone ends every session of the subject; sid alone, that session.
	e.backChannel(url.Values{"logout_token": {e.signLogout(e.idp.NewLogoutToken(clientID, "alice", ""))}})
	only := e.idp.NewLogoutToken(clientID, "alice", "sid-2")
	delete(only.Claims, "sub")
	e.backChannel(url.Values{"logout_token": {e.signLogout(only)}})
	if got := e.ended.list(); !slices.Equal(got[1:], []string{"test|alice-sub|", "test||sid-2"}) {
		t.Errorf("ended %v", got)
	}
}

// TestBackChannelLogoutRetriedAfterFailure: when the sessions cannot be
// ended (the store fails), the IdP gets 500 and the token is not used up,
// so its retry ends them; a third delivery is a replay.
func TestBackChannelLogoutRetriedAfterFailure(t *testing.T) {
	e := newEnv(t)
	tok := e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-1"))
	e.ended.mu.Lock()
	e.ended.fail = errors.New("store unavailable")
	e.ended.mu.Unlock()
	if status, code, _ := e.backChannel(url.Values{"logout_token": {tok}}); status != http.StatusInternalServerError || code != oidc.CodeLogoutFailed {
		t.Fatalf("store failing: %d %s, want 500 %s", status, code, oidc.CodeLogoutFailed)
	}
	e.ended.mu.Lock()
	e.ended.fail = nil
	e.ended.mu.Unlock()
	if status, code, _ := e.backChannel(url.Values{"logout_token": {tok}}); status != http.StatusOK {
		t.Fatalf("the IdP's retry: %d %s, want 200", status, code)
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test|alice-sub|sid-1"}) {
		t.Errorf("ended %v, want alice's session sid-1 once", got)
	}
	if status, code, _ := e.backChannel(url.Values{"logout_token": {tok}}); status != http.StatusBadRequest || code != oidc.CodeLogoutTokenReplayed {
		t.Errorf("third delivery: %d %s, want 400 %s", status, code, oidc.CodeLogoutTokenReplayed)
	}
}

// TestBackChannelLogoutJWKSUnavailable: a logout token signed with a key
// the gateway must fetch, while the IdP's JWKS is down, is answered 500
// idp_unavailable (the IdP retries), not refused as forged; once the JWKS
// is back, the retry ends the session.
func TestBackChannelLogoutJWKSUnavailable(t *testing.T) {
	e := newEnv(t, func(c *oidc.Config) { c.JWKSRefreshInterval = time.Second })
	if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-0"))}}); status != http.StatusOK {
		t.Fatalf("first logout: %d %s", status, code)
	}
	if err := e.idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	e.idp.SetUnavailable(true, oidctest.PathJWKS)
	e.clock.Add(2 * time.Second)
	tok := e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-1"))
	if status, code, _ := e.backChannel(url.Values{"logout_token": {tok}}); status != http.StatusInternalServerError || code != oidc.CodeIdPUnavailable {
		t.Fatalf("JWKS down: %d %s, want 500 %s", status, code, oidc.CodeIdPUnavailable)
	}
	e.idp.SetUnavailable(false, oidctest.PathJWKS)
	e.clock.Add(2 * time.Second)
	if status, code, _ := e.backChannel(url.Values{"logout_token": {tok}}); status != http.StatusOK {
		t.Fatalf("the IdP's retry: %d %s, want 200", status, code)
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test|alice-sub|sid-0", "test|alice-sub|sid-1"}) {
		t.Errorf("ended %v", got)
	}
}

// TestBackChannelLogoutKeyPendingRetried: the JWKS is fetched for an
// unknown kid at most every 30 s, and anyone can spend that fetch by
// posting a made-up logout token under a random kid. An IdP that
// publishes its new key as it starts signing with it (Keycloak's
// rotation, the test IdP's), whose genuine logout token under that key
// comes within those 30 s, is answered 503 signing_key_pending with
// Retry-After the time left (not a final 400, which the IdP would not
// retry, leaving the session signed in), its jti not used up: its retry
// once the limit has passed ends the session.
func TestBackChannelLogoutKeyPendingRetried(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newEnv(t, func(c *oidc.Config) { c.Logger = zap.New(core) })
	e.idp.SetClock(e.clock.Now)
	if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-0"))}}); status != http.StatusOK {
		t.Fatalf("first logout: %d %s", status, code)
	}
	e.clock.Add(time.Minute)
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forged := e.idp.NewLogoutToken(clientID, "alice", "sid-x")
	forged.Key = foreign
	// The fetch it spends finds no key for it: refused as forged.
	if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(forged)}}); status != http.StatusBadRequest || code != oidc.CodeLogoutTokenInvalid {
		t.Fatalf("forged token: %d %s, want 400 %s", status, code, oidc.CodeLogoutTokenInvalid)
	}
	fetches := e.idp.Requests(oidctest.PathJWKS)
	e.clock.Add(1500 * time.Millisecond) // 28.5 s left: Retry-After rounds up, as a retry a moment early meets the limit again
	if err := e.idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	genuine := e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-1"))
	status, code, h := e.backChannel(url.Values{"logout_token": {genuine}})
	if status != http.StatusServiceUnavailable || code != oidc.CodeSigningKeyPending || h.Get("Retry-After") != "29" {
		t.Fatalf("the IdP's logout token under its new key, 1.5 s after the forged one: %d %s Retry-After %q, want 503 %s Retry-After 29",
			status, code, h.Get("Retry-After"), oidc.CodeSigningKeyPending)
	}
	if n := e.idp.Requests(oidctest.PathJWKS); n != fetches {
		t.Errorf("JWKS fetched %d times, want %d: the pending token must not fetch within the limit", n, fetches)
	}
	// One WARN line (not an outage's ERROR), its error worded as the
	// reason it gives: not as a forged token's.
	lines := logs.FilterMessage("back-channel logout: the logout token could not be checked").All()
	if len(lines) != 1 || lines[0].Level != zapcore.WarnLevel || lines[0].ContextMap()["reason"] != oidc.CodeSigningKeyPending ||
		!strings.Contains(fmt.Sprint(lines[0].ContextMap()["error"]), oidc.CodeSigningKeyPending) ||
		strings.Contains(fmt.Sprint(lines[0].ContextMap()["error"]), oidc.CodeLogoutTokenInvalid) {
		t.Errorf("logged %v, want one WARN line, reason and error %s", lines, oidc.CodeSigningKeyPending)
	}
	e.clock.Add(29 * time.Second) // the IdP retries after Retry-After
	if status, code, _ := e.backChannel(url.Values{"logout_token": {genuine}}); status != http.StatusOK {
		t.Fatalf("the IdP's retry: %d %s, want 200 (its jti not used up by the 503)", status, code)
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test|alice-sub|sid-0", "test|alice-sub|sid-1"}) {
		t.Errorf("ended %v", got)
	}
}

// TestBackChannelLogoutRefusals: every check of Back-Channel Logout 1.0
// (2.6), broken once. Each is refused with 400 and its code, and ends
// nothing; its jti is not consumed, so the check, not a replay, refused it.
func TestBackChannelLogoutRefusals(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		edit func(*oidctest.Token)
		code string
	}{
		{"unsigned (alg none)", func(t *oidctest.Token) { t.Alg = "none" }, oidc.CodeLogoutTokenInvalid},
		{"signed by a key the JWKS lacks", func(t *oidctest.Token) { t.Key = otherKey }, oidc.CodeLogoutTokenInvalid},
		{"HMAC, which the allow-list lacks", func(t *oidctest.Token) { t.Alg = "HS256" }, oidc.CodeLogoutTokenInvalid},
		{"typed as another kind of JWT", func(t *oidctest.Token) { t.Header["typ"] = "at+jwt" }, oidc.CodeLogoutTokenType},
		{"another issuer", func(t *oidctest.Token) { t.Claims["iss"] = "https://evil.example" }, oidc.CodeLogoutTokenIssuer},
		{"another audience", func(t *oidctest.Token) { t.Claims["aud"] = "other-client" }, oidc.CodeLogoutTokenAudience},
		{"azp of another client", func(t *oidctest.Token) {
			t.Claims["aud"] = []string{clientID, "other-client"}
			t.Claims["azp"] = "other-client"
		}, oidc.CodeLogoutTokenAudience},
		{"several audiences without azp", func(t *oidctest.Token) { t.Claims["aud"] = []string{clientID, "other-client"} }, oidc.CodeLogoutTokenAudience},
		{"no iat", func(t *oidctest.Token) { delete(t.Claims, "iat") }, oidc.CodeLogoutTokenIssuedAt},
		{"iat in the future", func(t *oidctest.Token) { t.Claims["iat"] = now.Add(2 * time.Minute).Unix() }, oidc.CodeLogoutTokenIssuedAt},
		{"iat too old", func(t *oidctest.Token) { t.Claims["iat"] = now.Add(-2 * time.Minute).Unix() }, oidc.CodeLogoutTokenIssuedAt},
		{"expired", func(t *oidctest.Token) { t.Claims["exp"] = now.Add(-2 * time.Minute).Unix() }, oidc.CodeLogoutTokenExpired},
		{"exp not a number", func(t *oidctest.Token) { t.Claims["exp"] = "later" }, oidc.CodeLogoutTokenExpired},
		{"no events", func(t *oidctest.Token) { delete(t.Claims, "events") }, oidc.CodeLogoutTokenEvent},
		{"another event", func(t *oidctest.Token) {
			t.Claims["events"] = map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}
		}, oidc.CodeLogoutTokenEvent},
		{"event not an object", func(t *oidctest.Token) {
			t.Claims["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logout": true}
		}, oidc.CodeLogoutTokenEvent},
		{"a nonce (an ID token)", func(t *oidctest.Token) { t.Claims["nonce"] = "n" }, oidc.CodeLogoutTokenNonce},
		{"neither sub nor sid", func(t *oidctest.Token) { delete(t.Claims, "sub"); delete(t.Claims, "sid") }, oidc.CodeLogoutTokenSubject},
		// Over 512 bytes (maxLogoutID): sub and sid become store keys.
		{"sub too long", func(t *oidctest.Token) { t.Claims["sub"] = strings.Repeat("s", 513) }, oidc.CodeLogoutTokenSubject},
		{"sid too long", func(t *oidctest.Token) { t.Claims["sid"] = strings.Repeat("s", 513) }, oidc.CodeLogoutTokenSubject},
		{"no jti", func(t *oidctest.Token) { delete(t.Claims, "jti") }, oidc.CodeLogoutTokenJTI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.idp.NewLogoutToken(clientID, "alice", "sid-1")
			jti := tok.Claims["jti"]
			tc.edit(tok)
			status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(tok)}})
			if status != http.StatusBadRequest || code != tc.code {
				t.Fatalf("got %d %q, want 400 %q", status, code, tc.code)
			}
			if got := e.ended.list(); len(got) != 0 {
				t.Fatalf("a refused token ended sessions: %v", got)
			}
			// Nothing was consumed: a valid token with the same jti passes.
			good := e.idp.NewLogoutToken(clientID, "alice", "sid-1")
			good.Claims["jti"] = jti
			if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(good)}}); status != http.StatusOK {
				t.Errorf("the valid token with the refused one's jti: %d %s", status, code)
			}
		})
	}
}

// TestBackChannelLogoutRequests: what is not a logout token POST.
func TestBackChannelLogoutRequests(t *testing.T) {
	e := newEnv(t)
	valid := url.Values{"logout_token": {e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-1"))}}.Encode()
	for _, body := range []string{
		"",
		url.Values{"logout_token": {""}}.Encode(),
		url.Values{"logout_token": {"a", "b"}}.Encode(),
		// ParseForm keeps the pairs before a malformed one: the valid
		// token parsed, the form is still refused whole.
		valid + "&%zz",
	} {
		if status, code, _ := e.backChannelBody(body); status != http.StatusBadRequest || code != oidc.CodeLogoutTokenMissing {
			t.Errorf("body %q: %d %s", body, status, code)
		}
	}
	// A JWE (five parts): encrypted logout tokens are not supported.
	if status, code, _ := e.backChannel(url.Values{"logout_token": {"a.b.c.d.e"}}); status != http.StatusBadRequest || code != oidc.CodeLogoutTokenInvalid {
		t.Errorf("JWE: %d %s", status, code)
	}
	w := httptest.NewRecorder()
	_ = e.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, e.rp.URL+"/backchannel-logout", nil), e.rp.URL+"/", oidc.BackChannelLogoutEndpoint)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if len(e.ended.list()) != 0 {
		t.Error("sessions ended")
	}
	if err := e.p.ServeEndpoint(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil), e.rp.URL+"/", "metadata"); !errors.Is(err, idp.ErrNoEndpoint) {
		t.Errorf("unknown endpoint: %v", err)
	}
}

// TestFrontChannelLogout: the IdP's iframe with iss and sid ends that sid's
// sessions, and may be framed; Entra's, without iss, too. A wrong iss, or
// no sid, is refused and ends nothing.
func TestFrontChannelLogout(t *testing.T) {
	e := newEnv(t)
	call := func(method, query string) (*httptest.ResponseRecorder, error) {
		w := httptest.NewRecorder()
		err := e.p.ServeEndpoint(w, httptest.NewRequest(method, e.rp.URL+"/frontchannel-logout?"+query, nil), e.rp.URL+"/", oidc.FrontChannelLogoutEndpoint)
		return w, err
	}
	w, err := call(http.MethodGet, url.Values{"iss": {e.idp.Issuer}, "sid": {"sid-1"}}.Encode())
	if err != nil || w.Code != http.StatusOK {
		t.Fatalf("front-channel logout: %d %v", w.Code, err)
	}
	if w.Header().Get("X-Frame-Options") != "" || strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors") ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("the answer may not be framed, or may be cached: %v", w.Header())
	}
	if _, err := call(http.MethodGet, "sid=sid-2"); err != nil {
		t.Errorf("without iss (Entra): %v", err)
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test||sid-1", "test||sid-2"}) {
		t.Errorf("ended %v", got)
	}
	for _, tc := range []struct{ query, code string }{
		{url.Values{"iss": {"https://evil.example"}, "sid": {"sid-3"}}.Encode(), oidc.CodeFrontChannelIssuer},
		{url.Values{"iss": {e.idp.Issuer, e.idp.Issuer}, "sid": {"sid-3"}}.Encode(), oidc.CodeFrontChannelIssuer},
		{url.Values{"iss": {e.idp.Issuer}}.Encode(), oidc.CodeFrontChannelSID},
		{url.Values{"sid": {"sid-3", "sid-4"}}.Encode(), oidc.CodeFrontChannelSID},
	} {
		w, err := call(http.MethodGet, tc.query)
		var le *idp.LoginError
		if !errors.As(err, &le) || le.Code != tc.code || !le.Logout || w.Body.Len() != 0 {
			t.Errorf("%s: %v (wrote %d bytes), want a logout refusal %s", tc.query, err, w.Body.Len(), tc.code)
		}
	}
	if w, _ := call(http.MethodPost, "sid=sid-3"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	if got := e.ended.list(); len(got) != 2 {
		t.Errorf("refused requests ended sessions: %v", got)
	}
}

// TestSignInRecordsSid: the session ID the IdP names sessions by in its
// logout messages comes with the sign-in.
func TestSignInRecordsSid(t *testing.T) {
	e := newEnv(t)
	res := e.login(newBrowser())
	wantCode(t, res, "")
	if sid := e.idp.SessionID("alice"); sid == "" || res.Assertion.Logout.SessionID != sid || res.Assertion.Logout.Subject != "alice-sub" {
		t.Errorf("Logout = %+v, want the IdP's sid %q", res.Assertion.Logout, sid)
	}
}
