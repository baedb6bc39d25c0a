package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// awayStore is a store whose database has gone away: every transaction
// fails, as the PostgreSQL backend's do while the server is down.
type awayStore struct {
	store.Store
	// away is read by the store's callers in goroutines of their own (the
	// identity_jwt keys' background read) while a test sets it.
	away atomic.Bool
}

var errAway = errors.New("postgres: begin: failed to connect: connection refused")

func (s *awayStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.away.Load() {
		return errAway
	}
	return s.Store.View(ctx, fn)
}

func (s *awayStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.away.Load() {
		return errAway
	}
	return s.Store.Update(ctx, fn)
}

// storeGoingAway is an sso handler of one OIDC IdP over a store that
// fails once st.away is set. It holds one user, and a session of that user
// made by another instance (uncached: in the store, not in this one's
// cache).
type storeGoingAway struct {
	h        *Handler
	st       *awayStore
	sessions *session.Manager
	user     *store.User
	uncached string
}

func newStoreGoingAway(t *testing.T) *storeGoingAway {
	t.Helper()
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	g := &storeGoingAway{st: &awayStore{Store: db}, user: &store.User{Email: "ada@example.com", Active: true}}
	if err := g.st.Update(ctx, func(tx store.Tx) error { return tx.PutUser(g.user) }); err != nil {
		t.Fatal(err)
	}
	g.sessions = session.New(g.st, session.Config{}, nil, nil)
	var err error
	if g.uncached, _, err = session.New(db, session.Config{}, nil, nil).Create(ctx, g.user, "okta", store.LogoutInfo{}); err != nil {
		t.Fatal(err)
	}
	plan, err := gateway.NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	okta := &gateway.IdP{Name: "okta", Protocol: "oidc"}
	g.h = &Handler{PathPrefix: DefaultPathPrefix, app: startedApp(t, g.st, g.sessions), logger: zap.NewNop(),
		route: &gateway.Route{PathPrefix: DefaultPathPrefix, IdPs: []*gateway.IdP{okta}, Default: okta, Headers: plan, Logger: zap.NewNop()}}
	return g
}

// TestStoreAwayAnswers503 (docs/cluster.md, "Failover"): while the store
// cannot be reached, a session this instance has cached still reaches the
// upstream, and one it must read gets 503 with Retry-After, a plain page
// for a navigation and JSON for a script, never the error itself. The
// clustertest package shows the same against a stopped PostgreSQL.
func TestStoreAwayAnswers503(t *testing.T) {
	g := newStoreGoingAway(t)
	h, st, uncached := g.h, g.st, g.uncached
	cached := g.cachedSession(t)
	upstream := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	serve := func(token, accept string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/page", nil)
		r.Header.Set("Accept", accept)
		r.Header.Set("Cookie", gateway.SessionCookiePlain+"="+token)
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, upstream); err != nil {
			t.Fatalf("ServeHTTP returned %v; want the answer written", err)
		}
		return w
	}
	st.away.Store(true)

	if w := serve(cached, "text/html"); w.Code != http.StatusOK {
		t.Errorf("cached session: %d, want 200 from the upstream", w.Code)
	}
	w := serve(uncached, "text/html,*/*")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != gateway.StoreRetryAfter ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "Try again in a moment") ||
		!strings.Contains(w.Body.String(), gateway.CodeStoreUnavailable) {
		t.Errorf("navigation with a session to read: %d, Retry-After %q, %s:\n%s", w.Code, w.Header().Get("Retry-After"), w.Header().Get("Content-Type"), w.Body)
	}
	if strings.Contains(w.Body.String(), "connection refused") {
		t.Error("the page shows the store's error")
	}
	w = serve(uncached, "application/json")
	var body map[string]string
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != gateway.StoreRetryAfter ||
		json.Unmarshal(w.Body.Bytes(), &body) != nil || body["error"] == "" {
		t.Errorf("API request with a session to read: %d, Retry-After %q: %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}

	st.away.Store(false)
	if w := serve(uncached, "application/json"); w.Code != http.StatusOK {
		t.Errorf("after the store came back: %d, want 200", w.Code)
	}
}

// cachedSession signs g's user in and returns the session's token; the
// handlers of g serve it from their cache once they have seen it.
func (g *storeGoingAway) cachedSession(t *testing.T) string {
	t.Helper()
	token, _, err := g.sessions.Create(context.Background(), g.user, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return token
}
