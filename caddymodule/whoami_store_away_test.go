package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestWhoamiStoreAway: while the store is away, /.sso/whoami answers as
// the protected paths do, 503 store_unavailable JSON with Retry-After and
// no store error, whether the session cannot be read (a made-up cookie of
// a token's shape) or the user of a cached session cannot; and the log
// gets one ERROR line a minute for all of them, not one per request. A
// cookie of any other shape names no session: 401, store or not.
func TestWhoamiStoreAway(t *testing.T) {
	g := newStoreGoingAway(t)
	core, logs := observer.New(zapcore.DebugLevel)
	g.h.route.Logger = zap.New(core)
	cached := g.cachedSession(t)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	g.st.away.Store(true)
	for i, token := range []string{strings.Repeat("madeUpByAnyone", 4)[:43], g.uncached, cached, strings.Repeat("madeUpAgain", 4)[:43]} {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+DefaultPathPrefix+"whoami", nil)
		r.Header.Set("Cookie", gateway.SessionCookiePlain+"="+token)
		w := httptest.NewRecorder()
		if err := g.h.ServeHTTP(w, r, next); err != nil {
			t.Fatalf("request %d: ServeHTTP returned %v; want the 503 written", i, err)
		}
		var body map[string]string
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != gateway.StoreRetryAfter ||
			json.Unmarshal(w.Body.Bytes(), &body) != nil || body["error"] == "" || strings.Contains(w.Body.String(), "connection refused") {
			t.Errorf("request %d: %d, Retry-After %q: %s", i, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d ERROR lines for 4 requests while the store is away, want 1", n)
	}
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+DefaultPathPrefix+"whoami", nil)
	r.Header.Set("Cookie", gateway.SessionCookiePlain+"=made-up-by-anyone")
	w := httptest.NewRecorder()
	if err := g.h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusUnauthorized {
		t.Errorf("a cookie of no token's shape while the store is away: %d %v; want 401", w.Code, err)
	}
	g.st.away.Store(false)
	r = httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+DefaultPathPrefix+"whoami", nil)
	r.Header.Set("Cookie", gateway.SessionCookiePlain+"="+cached)
	w = httptest.NewRecorder()
	if err := g.h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusOK {
		t.Errorf("after the store came back: %d %v", w.Code, err)
	}
}

// TestJWKSStoreAway: the identity token's key set, which anyone may fetch,
// answers 503 with Retry-After while the store that keeps the keys is
// away, within the same one-ERROR-a-minute budget, where it was a 500
// that Caddy logged for every request; and the keys once it is back.
func TestJWKSStoreAway(t *testing.T) {
	g := newStoreGoingAway(t)
	core, logs := observer.New(zapcore.DebugLevel)
	g.h.route.Logger = zap.New(core)
	g.h.route.SignIdentity(gateway.SignerConfig{})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	get := func() *httptest.ResponseRecorder {
		t.Helper()
		w := httptest.NewRecorder()
		if err := g.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+DefaultPathPrefix+"jwks.json", nil), next); err != nil {
			t.Fatalf("ServeHTTP returned %v; want the answer written", err)
		}
		return w
	}
	g.st.away.Store(true)
	for i := range 3 {
		if w := get(); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != gateway.StoreRetryAfter ||
			strings.Contains(w.Body.String(), "connection refused") {
			t.Errorf("request %d while the store is away: %d, Retry-After %q: %s", i, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d ERROR lines for 3 requests while the store is away, want 1", n)
	}
	g.st.away.Store(false)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if w := get(); w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &set) != nil || len(set.Keys) == 0 {
		t.Errorf("after the store came back: %d %s", w.Code, w.Body)
	}
}
