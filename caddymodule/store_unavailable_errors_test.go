package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestStoreUnavailableReachesHandleErrors: store_unavailable (503) is a
// page like the others (docs/pages.md, "handle_errors"): on a site whose
// error routes take a 503, a navigation whose session the store cannot
// read, and a sign-out it cannot record, are raised as Caddy errors with
// the {http.auth.sso.*} placeholders, Retry-After already on the answer,
// instead of being written past the operator's error routes.
func TestStoreUnavailableReachesHandleErrors(t *testing.T) {
	g := newStoreGoingAway(t)
	h, st, uncached := g.h, g.st, g.uncached
	// The site's handle_errors: one route, no matcher, so it takes every
	// status.
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{
		{Handlers: []caddyhttp.MiddlewareHandler{new(caddyhttp.StaticResponse)}}}}}
	upstream := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		t.Error("the request reached the upstream")
		return nil
	})
	st.away.Store(true)

	for _, tc := range []struct {
		what, method, path string
		signedOut          bool
	}{
		{"a navigation whose session cannot be read", http.MethodGet, "/page", false},
		{"a sign-out that cannot be recorded", http.MethodPost, "/.sso/logout", true},
	} {
		t.Run(tc.what, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://127.0.0.1"+tc.path, nil)
			r.Header.Set("Accept", "text/html")
			r.Header.Set("Cookie", gateway.SessionCookiePlain+"="+uncached)
			repl := caddy.NewReplacer()
			r = r.WithContext(context.WithValue(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl), caddyhttp.ServerCtxKey, srv))
			w := httptest.NewRecorder()
			err := h.ServeHTTP(w, r, upstream)
			var he caddyhttp.HandlerError
			if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("ServeHTTP returned %v (%d written), want a 503 Caddy error for handle_errors", err, w.Code)
			}
			if page, _ := repl.GetString("http.auth.sso.page"); page != gateway.PageStoreUnavailable {
				t.Errorf("{http.auth.sso.page} = %q, want %s", page, gateway.PageStoreUnavailable)
			}
			if reason, _ := repl.GetString("http.auth.sso.reason"); reason != gateway.CodeStoreUnavailable {
				t.Errorf("{http.auth.sso.reason} = %q", reason)
			}
			if signedOut, _ := repl.Get("http.auth.sso.signed_out"); signedOut != tc.signedOut {
				t.Errorf("{http.auth.sso.signed_out} = %v, want %v", signedOut, tc.signedOut)
			}
			if w.Header().Get("Retry-After") != gateway.StoreRetryAfter {
				t.Errorf("Retry-After %q, want %s on the answer the error routes write", w.Header().Get("Retry-After"), gateway.StoreRetryAfter)
			}
			if w.Body.Len() != 0 {
				t.Errorf("the gateway wrote the page itself:\n%s", w.Body)
			}
		})
	}
}
