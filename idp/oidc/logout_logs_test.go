package oidc_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestBackChannelOutageLogBudgeted: while the IdP's JWKS is down, anyone's
// POST of a made-up logout token meets the outage unchecked (500
// idp_unavailable, so that the IdP retries its real ones); 50 of them log
// one ERROR line, the rest at DEBUG, and the next ERROR line a minute
// later counts them.
func TestBackChannelOutageLogBudgeted(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newEnv(t, func(c *oidc.Config) { c.Logger = zap.New(core); c.JWKSRefreshInterval = time.Second })
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "made-up"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign([]byte(`{"iss":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := obj.CompactSerialize()
	e.idp.SetUnavailable(true, oidctest.PathJWKS)
	post := func(n int) {
		for range n {
			if status, code, _ := e.backChannel(url.Values{"logout_token": {forged}}); status != http.StatusInternalServerError || code != oidc.CodeIdPUnavailable {
				t.Fatalf("JWKS down: %d %s, want 500 %s", status, code, oidc.CodeIdPUnavailable)
			}
		}
	}
	post(50)
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || errs[0].ContextMap()["reason"] != oidc.CodeIdPUnavailable {
		t.Fatalf("%d ERROR lines for 50 anonymous POSTs during the outage, want 1 with its reason", len(errs))
	}
	e.clock.Add(time.Minute)
	post(1)
	errs = logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 2 || errs[1].ContextMap()["repeated_last_minute"] != int64(49) {
		t.Errorf("a minute later: %d ERROR lines, last %v, want a second counting the 49 at DEBUG", len(errs), errs[len(errs)-1].ContextMap())
	}
}

// TestFrontChannelLogoutLogLevel: anyone's GET of the front-channel logout
// endpoint with a made-up sid ends nothing and logs at DEBUG only; one
// that ends a session logs at INFO.
func TestFrontChannelLogoutLogLevel(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newEnv(t, func(c *oidc.Config) { c.Logger = zap.New(core) })
	get := func(sid string) {
		t.Helper()
		w := httptest.NewRecorder()
		if err := e.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, e.rp.URL+"/frontchannel-logout?sid="+sid, nil), e.rp.URL+"/", oidc.FrontChannelLogoutEndpoint); err != nil || w.Code != http.StatusOK {
			t.Fatalf("sid %s: %d %v", sid, w.Code, err)
		}
	}
	e.ended.mu.Lock()
	e.ended.none = true
	e.ended.mu.Unlock()
	for i := range 100 {
		get("made-up-" + strconv.Itoa(i))
	}
	if n := logs.FilterLevelExact(zapcore.InfoLevel).Len(); n != 0 {
		t.Errorf("%d INFO lines for 100 front-channel logouts that ended nothing", n)
	}
	if n := logs.FilterMessage("front-channel logout").FilterLevelExact(zapcore.DebugLevel).Len(); n != 100 {
		t.Errorf("%d DEBUG lines, want 100", n)
	}
	e.ended.mu.Lock()
	e.ended.none = false
	e.ended.mu.Unlock()
	get("sid-1")
	info := logs.FilterLevelExact(zapcore.InfoLevel).All()
	if len(info) != 1 || info[0].ContextMap()["sessions_ended"] != int64(1) {
		t.Errorf("a logout that ended a session: %d INFO lines, want one", len(info))
	}
}
