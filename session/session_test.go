package session_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// clock is a settable time source shared by the Manager and the test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := new(clock)
	c.ns.Store(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// shared is db as instances sharing it see it: a store.Broadcaster, as
// PostgreSQL is, whose broadcasts reach no one (the cache TTL carries
// changes, as while notifications are down).
func shared(db store.Store) store.Store { return &countingBroadcaster{Store: db} }

func addUser(t testing.TB, db store.Store, u *store.User) *store.User {
	t.Helper()
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	return u
}

func activeUser() *store.User {
	return &store.User{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace",
		Groups: []string{"eng", "ops"}, Active: true, Source: store.SourceJIT}
}

func TestCreateAndResolve(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{}, nil, clk.now)
	u := addUser(t, db, activeUser())

	token, s, err := m.Create(ctx, u, "okta", store.LogoutInfo{Subject: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 43 {
		t.Errorf("token %q is shorter than 256 bits", token)
	}
	if s.Hash == token || s.Hash != session.Hash(token) {
		t.Error("the store must key sessions by the token's hash, not the token")
	}
	id, err := m.Resolve(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if id.UserID != u.ID || id.Email != u.Email || id.IdP != "okta" {
		t.Errorf("identity = %+v", id)
	}
	if got := id.Value(session.FieldGroups)[0]; got != "eng,ops" {
		t.Errorf("groups header value = %q", got)
	}
	if _, err := m.Resolve(ctx, token+"x"); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("unknown token: %v", err)
	}

	// A fresh Manager (a restart or a reload) resolves from the store.
	m2 := session.New(db, session.Config{}, nil, clk.now)
	if _, err := m2.Resolve(ctx, token); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

// TestIdleAcrossInstances: instances sharing a store write a session's
// uses in batches, so the stored last use may trail one another instance
// served by up to TouchInterval and a flush period. An instance that knows
// the session only from the store allows for that: a session in use on
// one instance is not ended as idle by the next.
func TestIdleAcrossInstances(t *testing.T) {
	ctx, clk, a, another, token := instances(t)
	b := another()
	for _, at := range []time.Duration{40 * time.Second, 40 * time.Second, 30 * time.Second} { // +40s, +80s, +110s on a
		clk.advance(at)
		if _, err := a.Resolve(ctx, token); err != nil {
			t.Fatalf("on a: %v", err)
		}
	}
	clk.advance(15 * time.Second) // +125s: 15 s after its last use, on b
	if _, err := b.Resolve(ctx, token); err != nil {
		t.Fatalf("on b, 15 s after its last use on a: %v", err)
	}
	// Unused past the idle timeout and the lag, it ends everywhere.
	c := another()
	clk.advance(4*time.Minute + time.Second)
	if _, err := c.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("unused for over 4 minutes: %v, want ErrNoSession", err)
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		cfg     session.Config
		steps   []time.Duration // advance, then resolve; all but the last must succeed
		restart bool            // resolve the last step with a fresh Manager (store path)
	}{
		{"absolute lifetime", session.Config{Lifetime: time.Hour, IdleTimeout: -1}, []time.Duration{30 * time.Minute, 31 * time.Minute}, false},
		{"absolute lifetime from store", session.Config{Lifetime: time.Hour, IdleTimeout: -1}, []time.Duration{30 * time.Minute, 31 * time.Minute}, true},
		{"idle timeout", session.Config{Lifetime: 8 * time.Hour, IdleTimeout: 10 * time.Minute}, []time.Duration{9 * time.Minute, 9 * time.Minute, 11 * time.Minute}, false},
		// From the store, idleness allows for the time a stored last
		// use may trail the real one (TouchInterval and a flush period):
		// 10m + 2m (TestIdleAcrossInstances).
		{"idle timeout from store", session.Config{Lifetime: 8 * time.Hour, IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute}, []time.Duration{9 * time.Minute, 9 * time.Minute, 12*time.Minute + time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			clk := newClock()
			m := session.New(db, tt.cfg, nil, clk.now)
			token, _, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range tt.steps {
				clk.advance(d)
				last := i == len(tt.steps)-1
				r := m
				if last && tt.restart {
					if err := m.Flush(ctx, true); err != nil {
						t.Fatal(err)
					}
					r = session.New(db, tt.cfg, nil, clk.now)
				}
				_, err := r.Resolve(ctx, token)
				if last && !errors.Is(err, session.ErrNoSession) {
					t.Fatalf("step %d: expected the session to have ended, got %v", i, err)
				}
				if !last && err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			// An ended session stays stored, past its end, until the
			// sweep: a sign-out clicked after it still finds what the
			// IdP's logout needs (TestSignOutOfEndedSessionKeepsIdPLogout),
			// and no instance reads it as live meanwhile.
			var stored *store.Session
			err = db.View(ctx, func(tx store.Tx) (err error) { stored, err = tx.Session(session.Hash(token)); return err })
			if err != nil {
				t.Fatalf("ended session gone from the store before the sweep: %v", err)
			}
			if clk.now().Before(stored.Expires) {
				t.Errorf("ended session stored with its end %v still ahead of %v", stored.Expires, clk.now())
			}
			if _, err := session.New(db, tt.cfg, nil, clk.now).Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("another instance resolves the ended session: %v", err)
			}
			clk.advance(session.SweepGrace)
			if n, err := m.Sweep(ctx); err != nil || n != 1 {
				t.Errorf("Sweep = %d, %v; want the ended session removed", n, err)
			}
			err = db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(session.Hash(token)); return err })
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("ended session still stored after the sweep: %v", err)
			}
		})
	}
}

func TestRevocationTakesEffectAtOnce(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	t1, _, _ := m.Create(ctx, u, "okta", store.LogoutInfo{})
	t2, _, _ := m.Create(ctx, u, "okta", store.LogoutInfo{})
	for _, tok := range []string{t1, t2} {
		if _, err := m.Resolve(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// What account.Service does to revoke: delete the sessions in the
	// store, then tell the cache.
	var n int
	err := db.Update(ctx, func(tx store.Tx) error {
		hashes, err := tx.DeleteUserSessions(u.ID)
		n = len(hashes)
		return err
	})
	if err != nil || n != 2 {
		t.Fatalf("DeleteUserSessions = %d, %v", n, err)
	}
	m.ForgetUser(u.ID)
	for _, tok := range []string{t1, t2} {
		if _, err := m.Resolve(ctx, tok); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("revoked session still resolves: %v", err)
		}
	}

	t3, _, _ := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if _, err := m.Revoke(ctx, t3, store.EventSessionLoggedOut); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resolve(ctx, t3); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("logged-out session still resolves: %v", err)
	}
}

func TestInactiveUserLosesSessionOnReload(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{CacheTTL: time.Second}, nil, clk.now)
	u := addUser(t, db, activeUser())
	token, _, _ := m.Create(ctx, u, "okta", store.LogoutInfo{})

	// Deactivated by another process: the cache trusts the entry for at
	// most CacheTTL.
	u.Active = false
	addUser(t, db, u)
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatalf("within cache TTL: %v", err)
	}
	clk.advance(2 * time.Second)
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("deactivated user still resolves after the cache TTL: %v", err)
	}
}

func TestLastSeenIsBatched(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{TouchInterval: time.Minute}, nil, clk.now)
	u := addUser(t, db, activeUser())
	token, s, _ := m.Create(ctx, u, "okta", store.LogoutInfo{})
	created := s.LastSeen

	stored := func() time.Time {
		var got time.Time
		_ = db.View(ctx, func(tx store.Tx) error {
			s, err := tx.Session(session.Hash(token))
			if err == nil {
				got = s.LastSeen
			}
			return err
		})
		return got
	}
	clk.advance(30 * time.Second)
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if !stored().Equal(created) {
		t.Error("last-seen written before the touch interval passed")
	}
	clk.advance(31 * time.Second)
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if want := created.Add(61 * time.Second); !stored().Equal(want) {
		t.Errorf("stored last-seen = %v, want %v", stored(), want)
	}
}

func TestConcurrentResolve(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	token, _, _ := m.Create(ctx, u, "okta", store.LogoutInfo{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if _, err := m.Resolve(ctx, token); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			m.ForgetUser(u.ID)
			_ = m.Flush(ctx, true)
		}
	}()
	wg.Wait()
}

func auditTypes(t *testing.T, db store.Store) map[string]int {
	t.Helper()
	counts := map[string]int{}
	err := db.View(context.Background(), func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Limit: 1000})
		for _, e := range events {
			counts[e.Type]++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func BenchmarkResolveCached(b *testing.B) {
	ctx := context.Background()
	db := backendtest.OpenBolt(b)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(b, db, activeUser())
	token, _, _ := m.Create(ctx, u, "okta", store.LogoutInfo{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Resolve(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestCreateRefusesInactiveUser(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	// The sign-in was approved with this copy; then the user was deactivated.
	approved := *u
	u.Active = false
	addUser(t, db, u)
	if _, _, err := m.Create(ctx, &approved, "okta", store.LogoutInfo{}); !errors.Is(err, session.ErrUserInactive) {
		t.Fatalf("Create for a deactivated user: %v", err)
	}
}

// TestIdleAllowsForAnotherInstanceWithAStaleEntry: instance b served the
// session a second after the sign-in and keeps that use in its cache
// entry, gone stale; instance a serves it 49 s later, a use not yet a
// TouchInterval past the stored time, so not written. When b reads the
// session again, its own remembered use is newer than the stored time;
// idleness must still allow for the lag of other instances' uses, as it
// does when b knows only the store: a session last used 75 s ago, under
// a 2 minute idle timeout, is not ended.
func TestIdleAllowsForAnotherInstanceWithAStaleEntry(t *testing.T) {
	ctx, clk, a, another, token := instances(t)
	b := another()
	clk.advance(time.Second)
	if _, err := b.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	clk.advance(49 * time.Second)
	if _, err := a.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*session.Manager{a, b} { // as Run does every minute
		if err := m.Flush(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(75 * time.Second)
	if _, err := b.Resolve(ctx, token); err != nil {
		t.Fatalf("on b, 75 s after its last use on a (idle timeout 2m): %v", err)
	}
}

// instances is a session signed in on instance a, and another that makes
// more instances sharing its store as PostgreSQL's instances do (a
// store.Broadcaster): a 2 minute idle timeout and a TouchInterval of a
// minute.
func instances(t *testing.T) (ctx context.Context, clk *clock, a *session.Manager, another func() *session.Manager, token string) {
	t.Helper()
	ctx, db, clk := context.Background(), shared(backendtest.OpenBolt(t)), newClock()
	cfg := session.Config{IdleTimeout: 2 * time.Minute, TouchInterval: time.Minute}
	another = func() *session.Manager { return session.New(db, cfg, nil, clk.now) }
	a = another()
	token, _, err := a.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, clk, a, another, token
}
