package signin_test

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestRefusalAuditNotWrittenIsLogged: Record never fails, so a refusal
// whose login.failed event the store did not take (here: the request's
// context ended first) is an ERROR line naming the event's type; the
// audit trail misses it, and the operator must be able to tell.
func TestRefusalAuditNotWrittenIsLogged(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.InfoLevel)
	r := &signin.Refusals{Store: e.db, Logger: zap.New(core)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Record(ctx, "okta", &idp.LoginError{Code: "state_mismatch", Bound: true}, "192.0.2.1", "")
	if evs := e.auditEvents(store.EventLoginFailed); len(evs) != 0 {
		t.Fatalf("login.failed written with an ended context: %+v", evs)
	}
	got := logs.FilterMessage("writing audit event").All()
	if len(got) != 1 || got[0].Level != zapcore.ErrorLevel || got[0].ContextMap()["type"] != store.EventLoginFailed {
		t.Errorf("lines about the unwritten event: %v, want one ERROR naming type %s", got, store.EventLoginFailed)
	}
}
