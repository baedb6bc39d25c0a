package oidc_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// TestBackChannelLogoutAccepted: the logout tokens that Back-Channel Logout
// 1.0 allows and real IdPs send, each accepted, and each bound of the
// checks met exactly. TestBackChannelLogoutRefusals breaks each check once;
// these pin the other side of it, so a check tightened by one step (a
// bound made exclusive, a typ the IdPs send dropped) refuses a logout the
// IdP sent in good faith, and the person stays signed in here.
func TestBackChannelLogoutAccepted(t *testing.T) {
	// The relying party's clock on a whole second: iat and exp are whole
	// seconds, so a bound is met exactly only from one.
	at := time.Now().Truncate(time.Second)
	skew := idp.DefaultClockSkew
	for _, tc := range []struct {
		name string
		edit func(*oidctest.Token)
	}{
		// 2.4: logout+jwt is recommended; IdPs that predate it send the
		// media type's full name, JWT, or no typ at all.
		{"typ logout+jwt", func(*oidctest.Token) {}},
		{"typ application/logout+jwt", func(t *oidctest.Token) { t.Header["typ"] = "application/logout+jwt" }},
		{"typ JWT", func(t *oidctest.Token) { t.Header["typ"] = "JWT" }},
		{"no typ", func(t *oidctest.Token) { delete(t.Header, "typ") }},
		// iat is accepted up to ClockSkew either side of now, inclusive.
		{"iat exactly ClockSkew ago", func(t *oidctest.Token) { t.Claims["iat"] = at.Add(-skew).Unix() }},
		{"iat exactly ClockSkew ahead", func(t *oidctest.Token) { t.Claims["iat"] = at.Add(skew).Unix() }},
		// exp is exclusive, read with the skew: a second short of it is
		// still valid.
		{"exp a second short of ClockSkew ago", func(t *oidctest.Token) {
			t.Claims["iat"] = at.Unix()
			t.Claims["exp"] = at.Add(-skew + time.Second).Unix()
		}},
		{"no exp", func(t *oidctest.Token) { delete(t.Claims, "exp") }},
		// 512 bytes (maxLogoutID) is the longest jti, sub and sid kept.
		{"jti of 512 bytes", func(t *oidctest.Token) { t.Claims["jti"] = strings.Repeat("j", 512) }},
		{"sub of 512 bytes", func(t *oidctest.Token) { t.Claims["sub"] = strings.Repeat("s", 512) }},
		{"sid of 512 bytes", func(t *oidctest.Token) { t.Claims["sid"] = strings.Repeat("s", 512) }},
		// One audience needs no azp; azp naming this client is fine.
		{"azp of this client", func(t *oidctest.Token) { t.Claims["azp"] = clientID }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tok := logoutTokenAt(t, at)
			tc.edit(tok)
			if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(tok)}}); status != http.StatusOK {
				t.Fatalf("got %d %q, want 200", status, code)
			}
			if n := len(e.ended.list()); n != 1 {
				t.Errorf("ended %d times, want once", n)
			}
		})
	}
}

// TestBackChannelLogoutBoundsRefused: one step past each bound that
// TestBackChannelLogoutAccepted meets is refused with its code, and ends
// nothing.
func TestBackChannelLogoutBoundsRefused(t *testing.T) {
	at := time.Now().Truncate(time.Second)
	skew := idp.DefaultClockSkew
	for _, tc := range []struct {
		name string
		edit func(*oidctest.Token)
		code string
	}{
		{"iat a second beyond ClockSkew ago", func(t *oidctest.Token) { t.Claims["iat"] = at.Add(-skew - time.Second).Unix() }, oidc.CodeLogoutTokenIssuedAt},
		{"iat a second beyond ClockSkew ahead", func(t *oidctest.Token) { t.Claims["iat"] = at.Add(skew + time.Second).Unix() }, oidc.CodeLogoutTokenIssuedAt},
		{"exp exactly ClockSkew ago", func(t *oidctest.Token) { t.Claims["exp"] = at.Add(-skew).Unix() }, oidc.CodeLogoutTokenExpired},
		// Over 512 bytes: jti becomes a store key, as sub and sid do.
		{"jti of 513 bytes", func(t *oidctest.Token) { t.Claims["jti"] = strings.Repeat("j", 513) }, oidc.CodeLogoutTokenJTI},
		{"jti not a string", func(t *oidctest.Token) { t.Claims["jti"] = 42 }, oidc.CodeLogoutTokenJTI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tok := logoutTokenAt(t, at)
			tc.edit(tok)
			status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(tok)}})
			if status != http.StatusBadRequest || code != tc.code {
				t.Fatalf("got %d %q, want 400 %q", status, code, tc.code)
			}
			if got := e.ended.list(); len(got) != 0 {
				t.Errorf("a refused token ended sessions: %v", got)
			}
		})
	}
}

// logoutTokenAt is an env whose relying party's clock stands at at, and
// alice's logout token for sid-1 issued then and valid for two minutes.
func logoutTokenAt(t *testing.T, at time.Time) (*env, *oidctest.Token) {
	t.Helper()
	e := newEnv(t, func(c *oidc.Config) { c.Now = func() time.Time { return at } })
	tok := e.idp.NewLogoutToken(clientID, "alice", "sid-1")
	tok.Claims["iat"] = at.Unix()
	tok.Claims["exp"] = at.Add(2 * time.Minute).Unix()
	return e, tok
}

// TestBackChannelLogoutJTIRemembered: the jti is used up under the IdP's
// name, for as long as its token could be accepted (iat plus the clock
// skew) and a margin. A shorter memory would let a captured token be
// replayed within the iat window once the register forgot it; a jti not
// named by its IdP would let one IdP's jti use up another's.
func TestBackChannelLogoutJTIRemembered(t *testing.T) {
	at := time.Now().Truncate(time.Second)
	e := newEnv(t, func(c *oidc.Config) { c.Now = func() time.Time { return at } })
	tok := e.idp.NewLogoutToken(clientID, "alice", "sid-1")
	tok.Claims["iat"] = at.Unix()
	tok.Claims["jti"] = "jti-1"
	if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(tok)}}); status != http.StatusOK {
		t.Fatalf("got %d %q, want 200", status, code)
	}
	e.replay.mu.Lock()
	until, ok := e.replay.seen["oidc_logout_jti\x00test/jti-1"]
	keys := len(e.replay.seen)
	e.replay.mu.Unlock()
	if !ok || keys != 1 {
		t.Fatalf("used up %d IDs, want oidc_logout_jti test/jti-1", keys)
	}
	if want := at.Add(2 * idp.DefaultClockSkew); !until.Equal(want) {
		t.Errorf("remembered until %v, want iat + 2 × clock skew (%v)", until, want)
	}
}

// TestFrontChannelLogoutBounds: a sid longer than 512 bytes (a store key)
// is refused; the answer, framed by the IdP's page, runs nothing
// (Content-Security-Policy default-src 'none'), and HEAD is served as GET.
func TestFrontChannelLogoutBounds(t *testing.T) {
	e := newEnv(t)
	call := func(method, query string) (int, http.Header, error) {
		w := httptest.NewRecorder()
		err := e.p.ServeEndpoint(w, httptest.NewRequest(method, e.rp.URL+"/frontchannel-logout?"+query, nil), e.rp.URL+"/", oidc.FrontChannelLogoutEndpoint)
		return w.Code, w.Header(), err
	}
	if _, _, err := call(http.MethodGet, "sid="+strings.Repeat("s", 513)); codeOf(err) != oidc.CodeFrontChannelSID {
		t.Errorf("sid of 513 bytes: %v, want %s", err, oidc.CodeFrontChannelSID)
	}
	status, h, err := call(http.MethodGet, "sid="+strings.Repeat("s", 512))
	if err != nil || status != http.StatusOK {
		t.Fatalf("sid of 512 bytes: %d %v", status, err)
	}
	if got := h.Get("Content-Security-Policy"); got != "default-src 'none'" {
		t.Errorf("Content-Security-Policy %q, want default-src 'none'", got)
	}
	if status, _, err := call(http.MethodHead, "sid=sid-2"); err != nil || status != http.StatusOK {
		t.Errorf("HEAD: %d %v", status, err)
	}
	if n := len(e.ended.list()); n != 2 {
		t.Errorf("ended %d times, want 2: %v", n, e.ended.list())
	}
}

// TestFrontChannelLogoutStoreFailure: a front-channel logout whose
// sessions the store could not end is logout_failed, as on the back
// channel: an outage here, not a request refused as malformed or forged,
// and the IdP's next logout of that sid ends them.
func TestFrontChannelLogoutStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.ended.mu.Lock()
	e.ended.fail = errors.New("store unavailable")
	e.ended.mu.Unlock()
	w := httptest.NewRecorder()
	err := e.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, e.rp.URL+"/frontchannel-logout?sid=sid-1", nil), e.rp.URL+"/", oidc.FrontChannelLogoutEndpoint)
	var le *idp.LoginError
	if !errors.As(err, &le) || le.Code != oidc.CodeLogoutFailed || !le.Logout || w.Body.Len() != 0 {
		t.Fatalf("store failing: %v (wrote %d bytes), want a logout error %s", err, w.Body.Len(), oidc.CodeLogoutFailed)
	}
}

// TestMultiTenantBackChannelLogoutSidOnly: a multi-tenant logout token
// with a sid and no sub names the session by its sid alone; the tenant
// prefix belongs to a sub, and "<tid>/" would name no subject sign-in ever
// recorded, so the session would stay.
func TestMultiTenantBackChannelLogoutSidOnly(t *testing.T) {
	e := newMultiTenantEnv(t, []string{tenantA, tenantB})
	tok := e.idp.NewLogoutToken(clientID, "alice", "sid-9")
	delete(tok.Claims, "sub")
	if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(tok)}}); status != http.StatusOK {
		t.Fatalf("sid-only logout token: %d %s", status, code)
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test||sid-9"}) {
		t.Errorf("ended %v, want the session sid-9 of no named subject", got)
	}
}

// TestBackChannelLogoutBodyCapped: the back-channel endpoint takes anyone's
// POST; a body beyond 64 KiB (a logout token is a few hundred bytes) is
// refused before it is parsed, as no logout token.
func TestBackChannelLogoutBodyCapped(t *testing.T) {
	e := newEnv(t)
	status, code, h := e.backChannel(url.Values{"logout_token": {strings.Repeat("A", 64<<10)}})
	if status != http.StatusBadRequest || code != oidc.CodeLogoutTokenMissing {
		t.Fatalf("oversized body: %d %q, want 400 %q", status, code, oidc.CodeLogoutTokenMissing)
	}
	// The refusal is RFC 6749 5.2's JSON error, labelled as JSON.
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
}

// TestLogoutEndpointsWithoutSessions: a provider started without the
// means to end sessions (idp.Runtime.Sessions unset) serves neither logout
// endpoint: both answer idp.ErrNoEndpoint, which the gateway turns into a
// 404, and a front-channel logout naming a sid is not taken as done (nor
// does it reach a SessionEnder that is not there).
func TestLogoutEndpointsWithoutSessions(t *testing.T) {
	e := newEnv(t)
	flows, err := idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	p, err := oidc.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), idp.Runtime{Flows: flows}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{oidc.FrontChannelLogoutEndpoint, oidc.BackChannelLogoutEndpoint} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, e.rp.URL+"/"+name+"?sid=sid-1", nil)
		if name == oidc.BackChannelLogoutEndpoint {
			r = httptest.NewRequest(http.MethodPost, e.rp.URL+"/"+name, strings.NewReader(url.Values{"logout_token": {"x.y.z"}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if err := p.ServeEndpoint(w, r, e.rp.URL+"/", name); !errors.Is(err, idp.ErrNoEndpoint) || w.Body.Len() != 0 {
			t.Errorf("%s: %v (wrote %d bytes), want idp.ErrNoEndpoint and nothing written", name, err, w.Body.Len())
		}
	}
}

// TestEndpointsAreServed: every endpoint oidc.Endpoints lists, by which
// the gateway labels metrics and caddy sso check lists the URLs to
// register, is one ServeEndpoint serves (anything but idp.ErrNoEndpoint,
// the gateway's 404), and the names it does not list, the callback and
// SAML's among them, are not served.
func TestEndpointsAreServed(t *testing.T) {
	e := newEnv(t)
	listed := oidc.Endpoints()
	if len(listed) == 0 {
		t.Fatal("oidc.Endpoints lists none")
	}
	for _, ep := range listed {
		if ep.Name == "" || ep.Field == "" {
			t.Errorf("endpoint %+v: want a name and a registration field", ep)
		}
		w := httptest.NewRecorder()
		err := e.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, e.rp.URL+"/"+ep.Name, nil), e.rp.URL+"/", ep.Name)
		if errors.Is(err, idp.ErrNoEndpoint) || w.Code == http.StatusNotFound {
			t.Errorf("listed endpoint %q not served: %v, %d", ep.Name, err, w.Code)
		}
	}
	for _, name := range []string{"", idp.OIDCCallbackEndpoint, idp.SAMLCallbackEndpoint, saml.MetadataEndpoint, saml.SLOEndpoint, "logout"} {
		w := httptest.NewRecorder()
		if err := e.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, e.rp.URL+"/"+name, nil), e.rp.URL+"/", name); !errors.Is(err, idp.ErrNoEndpoint) || w.Body.Len() != 0 {
			t.Errorf("unlisted endpoint %q: %v (wrote %d bytes), want idp.ErrNoEndpoint and nothing written", name, err, w.Body.Len())
		}
	}
}
