package signin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSignInLogged: a sign-in is audited (login.succeeded) and, since
// audit events are log lines too (docs/security.md), logged at INFO with
// the IdP and the user ID, whether the user was created or known, and
// never with the email.
func TestSignInLogged(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.InfoLevel)
	e.svc.Logger = zap.New(core)
	p := e.idp("oidc", "")
	for i, wantCreated := range []bool{true, false} {
		out, err := e.svc.SignIn(context.Background(), p, oidcAssertion(fmt.Sprint("state-", i), "Lovelace", false), "")
		if err != nil || out.Session == nil {
			t.Fatalf("sign-in %d: %v %+v", i, err, out)
		}
		lines := logs.FilterMessage("signed in").All()[i:]
		if len(lines) != 1 {
			t.Fatalf("sign-in %d: %d 'signed in' lines, want 1 (all: %v)", i, len(lines), logs.All())
		}
		f := lines[0].ContextMap()
		if lines[0].Level != zapcore.InfoLevel || f["idp"] != "oidc-idp" || f["user_id"] != out.User.ID || f["created"] != wantCreated {
			t.Errorf("sign-in %d: %s %v", i, lines[0].Level, f)
		}
	}
	for _, l := range logs.All() {
		if strings.Contains(fmt.Sprint(l.ContextMap()), "ada@example.com") && l.Message == "signed in" {
			t.Errorf("the sign-in line holds the email: %v", l.ContextMap())
		}
	}
}

// TestForgottenRefusalsCounted: when refusals from very many sources fill
// the log budget's map, a source's budget forgotten to make room takes
// its count of refusals logged at DEBUG only with it; the next WARN line
// says how many there were, and from how many sources.
func TestForgottenRefusalsCounted(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := newEnv(t)
	now := time.Now()
	r := &signin.Refusals{Store: e.db, Logger: zap.New(core), Now: func() time.Time { return now }}
	ctx := context.Background()
	le := &idp.LoginError{Code: "flow_missing"}
	for range 5 {
		r.Record(ctx, "okta", le, "198.51.100.7", "") // 1 WARN, 4 DEBUG
	}
	now = now.Add(time.Second)
	for i := range logbudget.MaxKeys - 1 { // fills the budget
		r.Record(ctx, "okta", le, fmt.Sprintf("2001:db8::%x", i), "")
	}
	now = now.Add(time.Minute)
	r.Record(ctx, "okta", le, "2001:db8:ffff::1", "") // a new source: old budgets forgotten
	all := logs.All()
	last := all[len(all)-1]
	f := last.ContextMap()
	if last.Level != zapcore.WarnLevel || f["other_lines_not_logged"] != int64(4) || f["other_keys_not_logged"] != int64(1) {
		t.Errorf("%s %v: want the 4 refusals of 198.51.100.7 logged at DEBUG only counted", last.Level, f)
	}
}

// TestPaddedGroupsWarned: a sign-in with a group name that has white space
// at an end (a typo at the IdP, which before names were kept exact passed
// for the name without it) is named in a WARN line, once per IdP a
// minute; a sign-in without one logs no such line.
func TestPaddedGroupsWarned(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.WarnLevel)
	e.svc.Logger = zap.New(core)
	p := e.idp("oidc", "")
	const msg = "group names with white space or an invisible character at an end are groups of their own: allow group and deny group compare them exactly"
	for i, groups := range [][]string{{"eng"}, {"eng", "admins "}, {"admins "}} {
		a := oidcAssertion(fmt.Sprint("state-", i), "Lovelace", false)
		a.Attributes["groups"] = groups
		if out, err := e.svc.SignIn(context.Background(), p, a, ""); err != nil || out.Session == nil {
			t.Fatalf("sign-in %d: %v %+v", i, err, out)
		}
		if n, want := logs.FilterMessage(msg).Len(), min(i, 1); n != want {
			t.Fatalf("after sign-in %d with %q: %d warnings, want %d", i, groups, n, want)
		}
	}
	f := logs.FilterMessage(msg).All()[0].ContextMap()
	if f["idp"] != "oidc-idp" || fmt.Sprint(f["groups"]) != `["admins "]` {
		t.Errorf("warning fields %v", f)
	}
}

// TestInvisiblyPaddedGroupsWarned: a name padded with an invisible
// character (a zero-width space, which apps' trims strip and no one sees)
// is warned about too: the rule is the one the groups header encodes by.
func TestInvisiblyPaddedGroupsWarned(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.WarnLevel)
	e.svc.Logger = zap.New(core)
	a := oidcAssertion("state-zw", "Lovelace", false)
	a.Attributes["groups"] = []string{"\u200badmins"}
	if out, err := e.svc.SignIn(context.Background(), e.idp("oidc", ""), a, ""); err != nil || out.Session == nil {
		t.Fatalf("sign-in: %v %+v", err, out)
	}
	if n := logs.FilterMessageSnippet("invisible character at an end").Len(); n != 1 {
		t.Errorf("%d warnings for a name starting with U+200B, want 1", n)
	}
}

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
