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
// are log lines too (docs/security.md). One line, also when the store
// runs the record's transaction again (as bolt does when another of its
// batch fails); none for a revocation that is not a sign-out.
func TestSignOutRecordedLateIsLogged(t *testing.T) {
	for _, tt := range []struct {
		name      string
		eventType string // "": a sign-out (SignOut), else Revoke's
		twice     bool   // Flush's transaction runs twice (the first rolled back)
		lines     int
	}{
		{name: "signed out", lines: 1},
		{name: "signed out, the record run twice", twice: true, lines: 1},
		{name: "revoked, not a sign-out", eventType: store.EventSessionRevoked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := backendtest.OpenBolt(t)
			full, twice := new(atomic.Bool), new(atomic.Bool)
			clk := newClock()
			core, logs := observer.New(zapcore.InfoLevel)
			m := session.New(writesFail{runsTwice{db, twice}, full}, session.Config{}, zap.New(core), clk.now)
			u := addUser(t, db, activeUser())
			token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Resolve(ctx, token); err != nil {
				t.Fatal(err)
			}
			full.Store(true)
			if tt.eventType == "" {
				_, err = m.SignOut(ctx, token)
			} else {
				_, err = m.Revoke(ctx, token, tt.eventType)
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("sign-out on a full disk: %v, want the store's error", err)
			}
			if n := logs.FilterMessage("signed out").Len(); n != 0 {
				t.Errorf("%d \"signed out\" lines before the sign-out was recorded, want none", n)
			}
			clk.advance(time.Minute)
			full.Store(false)
			twice.Store(tt.twice)
			for range 2 { // the second Flush has nothing left to record
				if err := m.Flush(ctx, false); err != nil {
					t.Fatal(err)
				}
			}
			want := store.EventSessionLoggedOut
			if tt.eventType != "" {
				want = tt.eventType
			}
			if k := auditTypes(t, db)[want]; k != 1 {
				t.Fatalf("%s events: %d, want 1", want, k)
			}
			lines := logs.FilterMessage("signed out").All()
			if len(lines) != tt.lines {
				t.Fatalf("%d \"signed out\" lines for the late-recorded %s, want %d", len(lines), want, tt.lines)
			}
			for _, l := range lines {
				f := l.ContextMap()
				if l.Level != zapcore.InfoLevel || f["user_id"] != u.ID || f["idp"] != "okta" || f["recorded_late"] != true || f["outcome_unknown"] != nil {
					t.Errorf("\"signed out\" line %s %v, want INFO with user_id %s, idp okta, recorded_late", l.Level, f, u.ID)
				}
			}
		})
	}
}

// runsTwice runs each write's fn twice while on is set, the first time
// in a transaction it rolls back, as a store may (bolt, when another fn
// of its batch fails; PostgreSQL, on a serialization failure).
type runsTwice struct {
	store.Store
	on *atomic.Bool
}

var errRunAgain = errors.New("test: run again")

func (s runsTwice) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.on.Load() {
		err := s.Store.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errRunAgain
		})
		if !errors.Is(err, errRunAgain) {
			return err
		}
	}
	return s.Store.Update(ctx, fn)
}
