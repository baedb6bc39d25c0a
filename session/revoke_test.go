package session_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// writesFail is a store whose writes fail while full is set, as on a full
// disk (reads go on).
type writesFail struct {
	store.Store
	full *atomic.Bool
}

func (s writesFail) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.full.Load() {
		return syscall.ENOSPC
	}
	return s.Store.Update(ctx, fn)
}

// TestSignOutTheStoreCannotRecord: a sign-out the store cannot record is
// reported, and the session is refused on this instance at once all the
// same (a copy of the cookie must not go on working while the disk is
// full); once the store takes writes again, the next Flush deletes the
// session, with its audit event, and a restart does not bring it back.
func TestSignOutTheStoreCannotRecord(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	full := new(atomic.Bool)
	st := writesFail{db, full}
	m := session.New(st, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	token, s, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}

	full.Store(true)
	if _, err := m.Revoke(ctx, token, store.EventSessionLoggedOut); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Revoke on a full disk: %v, want the store's error", err)
	}
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("the signed-out session on a full disk: %v, want ErrNoSession", err)
	}
	if _, err := m.Check(ctx, s.Hash); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Check of the signed-out session: %v, want ErrNoSession", err)
	}
	if _, err := m.Resolve(ctx, other); err != nil {
		t.Errorf("the user's other session: %v", err)
	}
	if err := m.Flush(ctx, false); err == nil {
		t.Error("Flush on a full disk reported no error")
	}
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("after a failed Flush: %v, want ErrNoSession", err)
	}

	full.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	restarted := session.New(db, session.Config{}, nil, nil)
	if _, err := restarted.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("after the store came back and a restart: %v, want ErrNoSession", err)
	}
	if _, err := restarted.Resolve(ctx, other); err != nil {
		t.Errorf("the other session after a restart: %v", err)
	}
	var events int
	err = db.View(ctx, func(tx store.Tx) error {
		evs, err := tx.AuditEvents(store.AuditQuery{UserID: u.ID, Type: store.EventSessionLoggedOut, Limit: 10})
		events = len(evs)
		return err
	})
	if err != nil || events != 1 {
		t.Errorf("session.logged_out events: %d (%v), want 1", events, err)
	}
}

// readDuringFailedWrite is a store whose writes fail, after running
// during: a request with a copy of the cookie that comes while the
// sign-out's write is under way.
type readDuringFailedWrite struct {
	store.Store
	during func()
}

func (s readDuringFailedWrite) Update(context.Context, func(store.Tx) error) error {
	if s.during != nil {
		s.during()
	}
	return syscall.ENOSPC
}

// TestSignOutUnrecordedAfterARaceRead: a request that reads (and caches)
// the session while the sign-out's failing write runs does not keep it
// working: the session is refused once Revoke returns.
func TestSignOutUnrecordedAfterARaceRead(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	st := &readDuringFailedWrite{Store: db}
	m := session.New(st, session.Config{}, nil, nil)
	token, _, err := (session.New(db, session.Config{}, nil, nil)).Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	st.during = func() {
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Errorf("the request during the sign-out: %v", err)
		}
	}
	if _, err := m.Revoke(ctx, token, store.EventSessionLoggedOut); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Revoke: %v", err)
	}
	st.during = nil
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("a copy of the cookie after the unrecorded sign-out: %v, want ErrNoSession", err)
	}
}

// TestSignOutRecordedLateKeepsItsTime: a sign-out the store could not
// record at once is audited, once the store is back, at the time the
// person signed out (marked recorded_late), not at the time of the Flush;
// a retry of it meanwhile keeps the first time.
func TestSignOutRecordedLateKeepsItsTime(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	full := new(atomic.Bool)
	clk := newClock()
	m := session.New(writesFail{db, full}, session.Config{}, nil, clk.now)
	u := addUser(t, db, activeUser())
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	signedOut := clk.now()
	if _, err := m.Revoke(ctx, token, store.EventSessionLoggedOut); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Revoke on a full disk: %v, want the store's error", err)
	}
	clk.advance(time.Minute)
	m.RevokeLater(token, store.EventSessionLoggedOut)
	clk.advance(2 * time.Hour) // the disk stays full a while
	full.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	err = db.View(ctx, func(tx store.Tx) error {
		evs, err = tx.AuditEvents(store.AuditQuery{UserID: u.ID, Type: store.EventSessionLoggedOut})
		return err
	})
	if err != nil || len(evs) != 1 {
		t.Fatalf("session.logged_out events: %v, %v; want 1", evs, err)
	}
	if e := evs[0]; !e.Time.Equal(signedOut) || e.Detail["recorded_late"] != "true" {
		t.Errorf("the late event: time %v, detail %v; want the sign-out's time %v and recorded_late=true", e.Time, e.Detail, signedOut)
	}
}

// TestSignOutRecordedLateIsLogged: a sign-out the store could not take at
// once (the request logged only the budgeted "the store failed" ERROR,
// which names no user) gets its "signed out" line when Flush records it,
// with recorded_late, as its session.logged_out event has: audit events
// are log lines too (docs/security.md).
func TestSignOutRecordedLateIsLogged(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	full := new(atomic.Bool)
	clk := newClock()
	core, logs := observer.New(zapcore.InfoLevel)
	m := session.New(writesFail{db, full}, session.Config{}, zap.New(core), clk.now)
	u := addUser(t, db, activeUser())
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if _, err := m.SignOut(ctx, token); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("SignOut on a full disk: %v, want the store's error", err)
	}
	if n := logs.FilterMessage("signed out").Len(); n != 0 {
		t.Errorf("%d \"signed out\" lines before the sign-out was recorded, want none", n)
	}
	clk.advance(time.Minute)
	full.Store(false)
	for range 2 { // the second Flush has nothing left to record
		if err := m.Flush(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	if k := loggedOutEvents(t, db); k != 1 {
		t.Fatalf("session.logged_out events: %d, want 1", k)
	}
	lines := logs.FilterMessage("signed out").All()
	if len(lines) != 1 {
		t.Fatalf("%d \"signed out\" lines for the late-recorded sign-out, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	if lines[0].Level != zapcore.InfoLevel || f["user_id"] != u.ID || f["idp"] != "okta" || f["recorded_late"] != true || f["outcome_unknown"] != nil {
		t.Errorf("\"signed out\" line %s %v, want INFO with user_id %s, idp okta, recorded_late", lines[0].Level, f, u.ID)
	}
}
