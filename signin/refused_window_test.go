package signin_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/signin"
)

// TestLeftOutCountKeptAcrossACappedWindow: an IdP's and reason's count of
// refusals left out is reported by its next written event, so when the
// first one of a minute is itself left out by the instance cap, the count
// waits, and the next minute's own left-out refusals add to it rather
// than replace it: the trail then accounts for every refusal.
func TestLeftOutCountKeptAcrossACappedWindow(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	r := &signin.Refusals{Store: e.db, Now: func() time.Time { return now }, AuditPerMinute: 1, BoundAuditPerMinute: 1}
	ctx := context.Background()
	refuse := func(code string, n int) {
		for range n {
			r.Record(ctx, "okta", &idp.LoginError{Code: code, Bound: true}, "192.0.2.1", "")
		}
	}
	refuse("id_token_expired", 3) // 1 written, 2 left out by its budget
	now = now.Add(time.Minute)
	refuse("id_token_signature", 1) // written: the instance cap is used up
	now = now.Add(time.Second)
	refuse("id_token_expired", 3) // 1 left out by the cap, 2 by its budget
	now = now.Add(time.Minute + time.Second)
	before := e.db.commits.Load()
	refuse("id_token_expired", 1)
	if n := e.db.commits.Load() - before; n != 1 {
		t.Fatalf("the first refusal of the third minute made %d commits, want 1", n)
	}
	last, err := lastLoginFailed(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	// 7 refusals of okta/id_token_expired, 2 written: 4 left out by its
	// own budget over two minutes, 1 by the cap.
	if last.Reason != "id_token_expired" || last.Detail["not_audited_last_minute"] != "4" || last.Detail["not_audited_instance_cap"] != "1" {
		t.Errorf("the next written event: %s %+v; want id_token_expired, 4 left out by its budget, 1 by the cap", last.Reason, last.Detail)
	}
}

// TestRefusalNamesItsUserAndLogin: a refused re-authentication is audited
// under the signed-in user it concerns (audit --user shows their own
// step-up failing), and the log says whether the callback belonged to a
// login in progress in this browser.
func TestRefusalNamesItsUserAndLogin(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zap.DebugLevel)
	r := &signin.Refusals{Store: e.db, Logger: zap.New(core)}
	ctx := context.Background()
	r.Record(ctx, "okta", &idp.LoginError{Code: "id_token_expired", Bound: true}, "192.0.2.1", "u-1")
	last, err := lastLoginFailed(ctx, e.db)
	if err != nil || last.UserID != "u-1" {
		t.Errorf("the refused re-authentication's event: %+v, %v; want user u-1", last, err)
	}
	r.Record(ctx, "okta", &idp.LoginError{Code: "flow_missing"}, "192.0.2.2", "")
	for i, want := range []bool{true, false} {
		got := logs.FilterMessage("sign-in refused").All()
		if len(got) != 2 || got[i].ContextMap()["login_in_progress"] != want {
			t.Fatalf("sign-in refused lines %v; want login_in_progress %v in line %d", got, want, i+1)
		}
	}
}
