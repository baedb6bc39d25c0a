package gateway

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestTokenRefreshFailedLogBudgetPerIdP: the ERROR line of access tokens
// an IdP cannot renew is kept to one a minute per IdP, not one for all:
// an outage of one IdP that every request repeats must not hide another
// IdP's that starts within the minute.
func TestTokenRefreshFailedLogBudgetPerIdP(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	rt := &Route{Logger: zap.New(core)}
	for _, name := range []string{"okta", "okta", "entra", "okta", "entra"} {
		err := &refreshFailed{idp: name, err: fmt.Errorf("%w: %s is away", session.ErrRefreshFailed, name)}
		if got := rt.sessionUnavailable(httptest.NewRecorder(), false, err); !errors.Is(got, ErrAnswered) {
			t.Fatalf("%s: %v, want ErrAnswered", name, got)
		}
	}
	got := map[string]int{}
	for _, e := range logs.FilterLevelExact(zapcore.ErrorLevel).All() {
		got[e.ContextMap()["idp"].(string)]++
	}
	if len(got) != 2 || got["okta"] != 1 || got["entra"] != 1 {
		t.Errorf("ERROR lines per IdP %v, want one of okta and one of entra", got)
	}
}
