package gateway_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestSessionUnavailableIsAPageError: a navigation whose session the store
// cannot read gets store_unavailable as a *PageError, which the caller
// shows or hands to the server's error routes like every other page, with
// Retry-After already set; the gateway writes nothing itself. A script
// still gets its JSON answer.
func TestSessionUnavailableIsAPageError(t *testing.T) {
	rt := &gateway.Route{Logger: zap.NewNop()}
	r := httptest.NewRequest(http.MethodGet, "/app", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	w := httptest.NewRecorder()
	pe, ok := gateway.AsPageError(rt.SessionUnavailable(w, r, errors.New("database is away")))
	if !ok || pe.Name != gateway.PageStoreUnavailable || pe.Status != http.StatusServiceUnavailable || pe.Code != gateway.CodeStoreUnavailable {
		t.Fatalf("got %+v, want the store_unavailable page as a *PageError", pe)
	}
	if w.Header().Get("Retry-After") != gateway.StoreRetryAfter || w.Body.Len() != 0 {
		t.Errorf("Retry-After %q, %d bytes written; want %s and nothing written", w.Header().Get("Retry-After"), w.Body.Len(), gateway.StoreRetryAfter)
	}

	r = httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Accept", "application/json")
	w = httptest.NewRecorder()
	if err := rt.SessionUnavailable(w, r, errors.New("database is away")); !errors.Is(err, gateway.ErrAnswered) || w.Code != http.StatusServiceUnavailable {
		t.Errorf("a script: %v, %d; want its JSON 503 written", err, w.Code)
	}
}
