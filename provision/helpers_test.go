package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

var t0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// env is a provisioner over a real store (a bolt file unless newEnvOn
// names another backend), with a clock that moves one minute per login and
// a log observer.
type env struct {
	t    *testing.T
	db   store.Store
	p    *provision.Provisioner
	logs *observer.ObservedLogs
	now  time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, backendtest.OpenBolt(t))
}

// newEnvOn is newEnv over db, for tests that run on every backend
// (backendtest.All).
func newEnvOn(t *testing.T, db store.Store) *env {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	e := &env{t: t, db: db, logs: logs, now: t0}
	e.p = &provision.Provisioner{Store: db, Logger: zap.New(core), Now: func() time.Time { return e.now }}
	return e
}

func (e *env) login(idp string, rules provision.Rules, prof mapping.Profile, verified bool) (*store.User, error) {
	e.t.Helper()
	e.now = e.now.Add(time.Minute)
	return e.p.Login(context.Background(), idp, rules, prof, verified)
}

// mustLogin signs in and fails the test on any error or denial.
func (e *env) mustLogin(idp string, rules provision.Rules, prof mapping.Profile) *store.User {
	e.t.Helper()
	u, err := e.login(idp, rules, prof, true)
	if err != nil {
		e.t.Fatalf("login %s/%s: %v", idp, prof.UniqueUserID, err)
	}
	return u
}

// seed writes a user directly, as SCIM or an admin would.
func (e *env) seed(u *store.User) *store.User {
	e.t.Helper()
	err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) })
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) user(id string) *store.User {
	e.t.Helper()
	var u *store.User
	err := e.db.View(context.Background(), func(tx store.Tx) (err error) {
		u, err = tx.User(id)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) byLink(idp, sub string) (*store.User, error) {
	var u *store.User
	err := e.db.View(context.Background(), func(tx store.Tx) (err error) {
		u, err = tx.UserByLink(idp, sub)
		return err
	})
	return u, err
}

// users dumps every user record as JSON, keyed by ID.
func (e *env) users() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	err := e.db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(u *store.User) error {
			b, err := json.Marshal(u)
			out[u.ID] = string(b)
			return err
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) audit() []store.Event {
	e.t.Helper()
	var ev []store.Event
	err := e.db.View(context.Background(), func(tx store.Tx) (err error) {
		ev, err = tx.AuditEvents(store.AuditQuery{Limit: 100000})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func types(ev []store.Event) []string {
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = e.Type
	}
	return out
}

// expectDenied signs in, expects a *Denial with the given reason, and
// checks that the only trace it left in the store is one audit event of
// type wantEvent, which it returns.
func (e *env) expectDenied(idp string, rules provision.Rules, prof mapping.Profile, verified bool, reason, wantEvent string) (*provision.Denial, store.Event) {
	e.t.Helper()
	usersBefore, auditBefore := e.users(), e.audit()
	u, err := e.login(idp, rules, prof, verified)
	var d *provision.Denial
	if !errors.As(err, &d) {
		e.t.Fatalf("login returned %v, %v; want a denial %s", u, err, reason)
	}
	if u != nil {
		e.t.Errorf("denied login also returned user %+v", u)
	}
	if d.Reason != reason {
		e.t.Errorf("reason = %q, want %q (%v)", d.Reason, reason, err)
	}
	if after := e.users(); !maps.Equal(after, usersBefore) {
		e.t.Errorf("denied login changed users:\nbefore %v\nafter  %v", usersBefore, after)
	}
	auditAfter := e.audit()
	if len(auditAfter) != len(auditBefore)+1 {
		e.t.Fatalf("denied login wrote %d audit events, want 1: %v", len(auditAfter)-len(auditBefore), types(auditAfter[len(auditBefore):]))
	}
	ev := auditAfter[len(auditAfter)-1]
	if ev.Type != wantEvent || ev.Reason != reason || ev.IdP != idp || ev.Subject != prof.UniqueUserID {
		e.t.Errorf("audit event = %+v, want %s/%s", ev, wantEvent, reason)
	}
	if !ev.Time.Equal(e.now) {
		e.t.Errorf("audit time %v, want the provisioner clock %v", ev.Time, e.now)
	}
	if d.Message() == "" || strings.Contains(d.Message(), prof.Email) && prof.Email != "" {
		e.t.Errorf("denial message %q is empty or reveals the email", d.Message())
	}
	return d, ev
}

// lastLog returns the last log entry and fails unless it has the message.
func (e *env) lastLog(msg string) observer.LoggedEntry {
	e.t.Helper()
	all := e.logs.All()
	if len(all) == 0 {
		e.t.Fatalf("no log line, want %q", msg)
	}
	last := all[len(all)-1]
	if last.Message != msg {
		e.t.Errorf("last log %q, want %q", last.Message, msg)
	}
	return last
}

// full is a profile with every attribute the rules require.
func full(sub string) mapping.Profile {
	return mapping.Profile{
		UniqueUserID: sub,
		FirstName:    "Ada",
		LastName:     "Lovelace",
		Email:        fmt.Sprintf("%s@example.com", strings.ToLower(sub)),
	}
}

var jit = provision.Rules{JIT: true}
