package gateway_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestStoreUnavailableLogBudget: while the store is away every request
// gets 503, but the log one ERROR line a minute, not one per request.
func TestStoreUnavailableLogBudget(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	rt := &gateway.Route{Logger: zap.New(core)}
	for range 20 {
		w := httptest.NewRecorder()
		if err := rt.StoreUnavailable(w, false, "", errors.New("database is away")); !errors.Is(err, gateway.ErrAnswered) {
			t.Fatal(err)
		}
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d", w.Code)
		}
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("20 requests wrote %d ERROR lines, want 1", n)
	}
	if n := logs.FilterLevelExact(zapcore.DebugLevel).Len(); n != 19 {
		t.Errorf("%d DEBUG lines, want 19", n)
	}
}
