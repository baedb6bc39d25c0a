package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// identityJWTHandler is an sso handler with identity_jwt c over g's app
// and store: a route of a config loaded anew (its own signer).
func identityJWTHandler(t *testing.T, g *storeGoingAway, c gateway.SignerConfig) *Handler {
	t.Helper()
	plan, err := gateway.NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := gateway.BaseOrigin("https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	okta := &gateway.IdP{Name: "okta", Protocol: "oidc"}
	rt := &gateway.Route{PathPrefix: DefaultPathPrefix, IdPs: []*gateway.IdP{okta}, Default: okta, Headers: plan, Logger: zap.NewNop()}
	rt.SignIdentity(c)
	return &Handler{PathPrefix: DefaultPathPrefix, app: g.h.app, logger: zap.NewNop(), route: rt, base: &base}
}

// serveIdentity serves a request of the session token on h, and returns
// the answer and the identity token the upstream got ("" when none).
func serveIdentity(t *testing.T, h *Handler, token, accept string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	var got string
	upstream := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got = r.Header.Get(gateway.DefaultIdentityJWTHeader)
		w.WriteHeader(http.StatusOK)
		return nil
	})
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/page", nil)
	r.Header.Set("Accept", accept)
	r.Header.Set("Cookie", gateway.SessionCookieSecure+"="+token)
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, upstream); err != nil {
		t.Fatalf("ServeHTTP returned %v; want the answer written", err)
	}
	return w, got
}

// fetchJWKS is the route's key set, as a verifier fetches it.
func fetchJWKS(t *testing.T, h *Handler) jose.JSONWebKeySet {
	t.Helper()
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	if err := h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://app.example.com"+DefaultPathPrefix+"jwks.json", nil), next); err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &set) != nil {
		t.Fatalf("jwks.json: %d %s", w.Code, w.Body)
	}
	return set
}

// verifyKid verifies tok's signature with set, and returns its kid.
func verifyKid(t *testing.T, set jose.JSONWebKeySet, tok string) (string, error) {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	return parsed.Headers[0].KeyID, parsed.Claims(&set, &c)
}

func kids(set jose.JSONWebKeySet) []string {
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.KeyID)
	}
	return ids
}

// TestIdentityJWTStoreAway (docs/cluster.md, "Failover"): a session this
// instance has cached reaches the upstream of an identity_jwt route while
// the store is away, with a token the route's JWKS verifies: across a key
// rotation (the next key, published the period before, signs), which may
// not need the store. A config loaded anew while it is away has no key in
// memory yet: it answers 503, as to any store outage, until it is back.
func TestIdentityJWTStoreAway(t *testing.T) {
	g := newStoreGoingAway(t)
	cached := g.cachedSession(t)
	const rotation = 2 * time.Second
	cfg := gateway.SignerConfig{TTL: time.Second, Rotation: rotation}
	h := identityJWTHandler(t, g, cfg)
	// Begin just after a rotation, so that the period's end is ahead.
	untilNext := func() {
		time.Sleep(rotation - time.Duration(time.Now().UnixNano()%int64(rotation)) + 50*time.Millisecond)
	}
	untilNext()
	period := func() int64 { return time.Now().UnixNano() / int64(rotation) }
	p0 := period()
	w, tok0 := serveIdentity(t, h, cached, "text/html")
	if w.Code != http.StatusOK || tok0 == "" {
		t.Fatalf("store up: %d, token %q", w.Code, tok0)
	}
	before := fetchJWKS(t, h) // what verifiers cache in this period
	if period() != p0 {
		t.Skip("this run was too slow for a 2s rotation (the machine is loaded)")
	}

	g.st.away.Store(true)
	untilNext()
	w, tok1 := serveIdentity(t, h, cached, "text/html")
	if w.Code != http.StatusOK || tok1 == "" {
		t.Fatalf("cached session at a key rotation, store away: %d, token %q; want 200 with a token signed by the next key\n%s", w.Code, tok1, w.Body)
	}
	kid0, _ := verifyKid(t, before, tok0)
	kid1, err := verifyKid(t, before, tok1)
	if err != nil || kid1 == kid0 {
		t.Errorf("token of the new period: kid %s (the period before's %s), verified with the JWKS of the period before (%v): %v", kid1, kid0, kids(before), err)
	}
	if _, err := verifyKid(t, fetchJWKS(t, h), tok1); err != nil {
		t.Errorf("the JWKS served with the store away does not verify the token: %v", err)
	}

	// A config loaded anew while the store is away has no key in memory:
	// the 503 of a store outage, and the period's key once it is back.
	reloaded := identityJWTHandler(t, g, cfg)
	w, tok2 := serveIdentity(t, reloaded, cached, "application/json")
	if w.Code != http.StatusServiceUnavailable || tok2 != "" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("first request after a config load, store away: %d (Retry-After %q), token %q; want 503\n%s", w.Code, w.Header().Get("Retry-After"), tok2, w.Body)
	}
	g.st.away.Store(false)
	w, tok2 = serveIdentity(t, reloaded, cached, "application/json")
	if kid2, err := verifyKid(t, fetchJWKS(t, reloaded), tok2); w.Code != http.StatusOK || err != nil || kid2 != kid1 {
		t.Errorf("after the config load, store back: %d, kid %s, want %s; verified: %v", w.Code, kid2, kid1, err)
	}
	if period() != p0+1 {
		t.Skip("this run was too slow for a 2s rotation (the machine is loaded)")
	}
}

// TestIdentityJWTStoreAwayNoKey: with no signing key ever read (a route
// whose first request comes while the store is away), a cached session
// gets the 503 store_unavailable answer of a store outage, not a 500, and
// neither the store's error nor a token reaches anyone.
func TestIdentityJWTStoreAwayNoKey(t *testing.T) {
	g := newStoreGoingAway(t)
	cached := g.cachedSession(t)
	h := identityJWTHandler(t, g, gateway.SignerConfig{})
	g.st.away.Store(true)
	for _, accept := range []string{"text/html", "application/json"} {
		w, tok := serveIdentity(t, h, cached, accept)
		page := accept == "text/html"
		if w.Code != http.StatusServiceUnavailable || tok != "" || w.Header().Get("Retry-After") == "" ||
			page != strings.Contains(w.Body.String(), gateway.CodeStoreUnavailable) || strings.Contains(w.Body.String(), "connection refused") {
			t.Errorf("Accept %s, no key in memory, store away: %d, token %q:\n%s", accept, w.Code, tok, w.Body)
		}
	}
	g.st.away.Store(false)
	if w, tok := serveIdentity(t, h, cached, "text/html"); w.Code != http.StatusOK || tok == "" {
		t.Errorf("store back: %d, token %q", w.Code, tok)
	}
	if set := fetchJWKS(t, h); !slices.ContainsFunc(set.Keys, func(k jose.JSONWebKey) bool { return k.KeyID != "" }) {
		t.Errorf("no keys published: %v", kids(set))
	}
}

// TestIdentityJWTStoreAwayEndsTheRequest: the 503 a script gets (JSON,
// written by the handler) while no signing key is in memory and the store
// is away ends the request; it went on to the upstream, without its
// identity token, and a POST's effects happened while the client was told
// 503.
func TestIdentityJWTStoreAwayEndsTheRequest(t *testing.T) {
	g := newStoreGoingAway(t)
	cached := g.cachedSession(t)
	h := identityJWTHandler(t, g, gateway.SignerConfig{})
	g.st.away.Store(true)
	for _, c := range []struct{ method, accept string }{{"GET", "text/html"}, {"GET", "application/json"}, {"POST", "text/html"}} {
		reached := false
		upstream := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			reached = true
			return nil
		})
		r := httptest.NewRequest(c.method, "https://app.example.com/api/transfer", nil)
		r.Header.Set("Accept", c.accept)
		r.Header.Set("Cookie", gateway.SessionCookieSecure+"="+cached)
		w := httptest.NewRecorder()
		err := h.ServeHTTP(w, r, upstream)
		if reached {
			t.Errorf("%s Accept %s: answered %d (%v) and also passed the request on to the upstream", c.method, c.accept, w.Code, err)
		}
		if code := w.Code; err == nil && code != http.StatusServiceUnavailable {
			t.Errorf("%s Accept %s: %d, want 503", c.method, c.accept, code)
		}
	}
}
