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

// pausingStore holds up one View, once armed, after it has read the store
// and before it returns: where a Manager has read a session and its user
// but not yet cached them.
type pausingStore struct {
	store.Store
	armed  atomic.Bool
	read   chan struct{} // closed once the armed View has read
	resume chan struct{} // closed by the test to let it return
}

func newPausingStore(st store.Store) *pausingStore {
	return &pausingStore{Store: st, read: make(chan struct{}), resume: make(chan struct{})}
}

func (p *pausingStore) View(ctx context.Context, fn func(store.Tx) error) error {
	err := p.Store.View(ctx, fn)
	if p.armed.CompareAndSwap(true, false) {
		close(p.read)
		<-p.resume
	}
	return err
}

// runInstances runs each Manager (so that it listens to the others'
// broadcasts) until the test ends, and waits until all listen.
func runInstances(t *testing.T, h *hub, ms ...*session.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx) }()
	}
	// Before the store closes: Run flushes once more as it returns.
	t.Cleanup(func() { cancel(); wg.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		n := len(h.listeners)
		h.mu.Unlock()
		if n == len(ms) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("managers did not start listening")
		}
	}
}

// deactivate marks the user inactive in the store, as a SCIM or admin
// deactivation commits it (before the cache is told).
func deactivate(t *testing.T, db store.Store, userID string) {
	t.Helper()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		u, err := tx.User(userID)
		if err != nil {
			return err
		}
		u.Active = false
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRevocationDuringLoad: a request that read the session from the store
// just before a revocation committed, and caches it just after the cache
// was told, does not leave it cached: the next request is refused, on this
// instance and when the revocation was made on another.
func TestRevocationDuringLoad(t *testing.T) {
	ctx := context.Background()
	type instances struct {
		db          store.Store
		here, other *session.Manager
		hub         *hub
	}
	tests := []struct {
		name   string
		revoke func(t *testing.T, in instances, n *session.NewSession)
	}{
		{"deactivation", func(t *testing.T, in instances, n *session.NewSession) {
			deactivate(t, in.db, n.Session.UserID)
			in.here.ForgetUser(n.Session.UserID)
		}},
		{"logout", func(t *testing.T, in instances, n *session.NewSession) {
			if _, err := in.here.Revoke(ctx, n.Token, store.EventSessionLoggedOut); err != nil {
				t.Fatal(err)
			}
		}},
		{"session ended (End)", func(t *testing.T, in instances, n *session.NewSession) {
			if err := in.here.End(ctx, n.Session.Hash, store.EventSessionRevoked, "test"); err != nil {
				t.Fatal(err)
			}
		}},
		{"session deleted, then ForgetSession", func(t *testing.T, in instances, n *session.NewSession) {
			err := in.db.Update(ctx, func(tx store.Tx) error { return tx.DeleteSession(n.Session.Hash) })
			if err != nil {
				t.Fatal(err)
			}
			in.here.ForgetSession(n.Session.Hash)
		}},
		{"deactivation on another instance", func(t *testing.T, in instances, n *session.NewSession) {
			deactivate(t, in.db, n.Session.UserID)
			in.other.ForgetUser(n.Session.UserID)
		}},
		{"logout on another instance", func(t *testing.T, in instances, n *session.NewSession) {
			if _, err := in.other.Revoke(ctx, n.Token, store.EventSessionLoggedOut); err != nil {
				t.Fatal(err)
			}
		}},
		{"deactivation, then the broadcast connection lost", func(t *testing.T, in instances, n *session.NewSession) {
			deactivate(t, in.db, n.Session.UserID)
			in.hub.mu.Lock()
			defer in.hub.mu.Unlock()
			in.hub.listeners[1](store.Invalidation{All: true})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			paused := newPausingStore(db)
			h := &hub{listeners: map[int]func(store.Invalidation){}}
			clk := newClock()
			cfg := session.Config{CacheTTL: time.Minute}
			in := instances{
				db:    db,
				here:  session.New(&broadcastStore{paused, h, 1}, cfg, nil, clk.now),
				other: session.New(&broadcastStore{db, h, 2}, cfg, nil, clk.now),
				hub:   h,
			}
			runInstances(t, h, in.here, in.other)
			n := signIn(t, in.here, db, addUser(t, db, activeUser()), nil)
			if _, err := in.other.Resolve(ctx, n.Token); err != nil {
				t.Fatal(err)
			}
			// Past the cache TTL: the next request reads the store.
			clk.advance(cfg.CacheTTL + time.Second)

			paused.armed.Store(true)
			raced := make(chan error, 1)
			go func() { _, err := in.here.Resolve(ctx, n.Token); raced <- err }()
			<-paused.read
			tt.revoke(t, in, n)
			close(paused.resume)
			<-raced // served or refused: it raced with the revocation

			if _, err := in.here.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("the request after the revocation: Resolve = %v, want ErrNoSession", err)
			}
		})
	}
}

// TestSignInRacingDeactivation: a session whose sign-in committed before
// the user was deactivated, but which is remembered after the cache was
// told, is not served from the cache.
func TestSignInRacingDeactivation(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	n, err := m.Prepare("okta", store.LogoutInfo{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx store.Tx) error { return n.Write(tx, u) }); err != nil {
		t.Fatal(err)
	}
	deactivate(t, db, u.ID)
	m.ForgetUser(u.ID)
	m.Remember(n)
	if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("deactivated user's new session: Resolve = %v, want ErrNoSession", err)
	}
}

// storedLastSeen is the session's last-seen time in the store.
func storedLastSeen(t *testing.T, db store.Store, hash string) time.Time {
	t.Helper()
	var got time.Time
	err := db.View(context.Background(), func(tx store.Tx) error {
		s, err := tx.Session(hash)
		if err == nil {
			got = s.LastSeen
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestSweepSparesSessionsInUse: with an idle timeout shorter than the lag
// of the stored last-seen time, a session used within the timeout (on this
// instance or another) survives a sweep though its stored last-seen time is
// older than the timeout; once idle past the timeout and that lag, it is
// swept.
func TestSweepSparesSessionsInUse(t *testing.T) {
	ctx := context.Background()
	const (
		idle  = 30 * time.Second
		touch = time.Minute
		lag   = 2 * touch // a touch interval's movement, flushed up to one later
	)
	for _, elsewhere := range []bool{false, true} {
		name := map[bool]string{false: "used on the sweeping instance", true: "used on another instance"}[elsewhere]
		t.Run(name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			clk := newClock()
			cfg := session.Config{IdleTimeout: idle, TouchInterval: touch}
			sweeper := session.New(db, cfg, nil, clk.now)
			user := sweeper
			if elsewhere {
				user = session.New(db, cfg, nil, clk.now)
			}
			n := signIn(t, sweeper, db, addUser(t, db, activeUser()), nil)
			created := n.Session.LastSeen

			// Used every 25 and 20 seconds: never idle for 30.
			for _, d := range []time.Duration{25 * time.Second, 20 * time.Second} {
				clk.advance(d)
				if _, err := user.Resolve(ctx, n.Token); err != nil {
					t.Fatal(err)
				}
			}
			// What Run does before a sweep: the uses moved less than a
			// touch interval, so they are not written yet.
			for _, m := range []*session.Manager{user, sweeper} {
				if err := m.Flush(ctx, false); err != nil {
					t.Fatal(err)
				}
			}
			if got := storedLastSeen(t, db, n.Session.Hash); clk.now().Sub(got) < idle {
				t.Fatalf("stored last-seen %v is within the idle timeout: the test shows nothing", got)
			}
			if got, err := sweeper.Sweep(ctx); err != nil || got != 0 {
				t.Errorf("Sweep = %d, %v; want a session in use spared", got, err)
			}
			if _, err := user.Resolve(ctx, n.Token); err != nil {
				t.Errorf("session in use after the sweep: %v", err)
			}

			// Unused since: idle past the timeout, the lag and the
			// sweep's grace.
			clk.advance(idle + lag + session.SweepGrace + time.Second)
			if got, err := sweeper.Sweep(ctx); err != nil || got != 1 {
				t.Errorf("Sweep = %d, %v; want the idle session swept", got, err)
			}
			err := db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(n.Session.Hash); return err })
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("idle session still stored (created %v): %v", created, err)
			}
		})
	}
}

// tickingClock moves on by step each time it is read.
type tickingClock struct {
	clock
	step atomic.Int64
}

func (c *tickingClock) now() time.Time { return time.Unix(0, c.ns.Add(c.step.Load())) }

// TestSweepJudgesAtItsStart: a sweep that takes minutes (no flush runs
// meanwhile) judges idleness as of its start, so it does not delete a
// session in use whose last uses are not written yet.
func TestSweepJudgesAtItsStart(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := &tickingClock{clock: *newClock()}
	cfg := session.Config{Lifetime: time.Hour, IdleTimeout: 30 * time.Second, TouchInterval: time.Minute, MaxPerUser: -1}
	// Contended: one session per batch, so the sweep is many batches.
	m := session.New(contendedStore{db}, cfg, nil, clk.now)
	u := addUser(t, db, activeUser())
	const expired = 10
	for range expired {
		signIn(t, m, db, u, nil)
	}
	clk.advance(time.Hour - 40*time.Second)
	inUse := signIn(t, m, db, u, nil) // stored as last seen now
	clk.advance(20 * time.Second)
	if _, err := m.Resolve(ctx, inUse.Token); err != nil { // a use not written yet
		t.Fatal(err)
	}
	clk.advance(21 * time.Second) // the first sessions' lifetime is over
	clk.step.Store(int64(time.Minute))
	got, err := m.Sweep(ctx) // a minute per batch
	clk.step.Store(0)
	if err != nil || got != expired {
		t.Errorf("Sweep = %d, %v; want the %d expired sessions", got, err, expired)
	}
	err = db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(inUse.Session.Hash); return err })
	if err != nil {
		t.Errorf("session in use when the sweep began was swept: %v", err)
	}
}

// TestForgetUserKeepsLastSeen: a user's sessions dropped from the cache (as
// a SCIM profile or group change does) keep their unwritten last-seen
// times for the next Flush.
func TestForgetUserKeepsLastSeen(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{TouchInterval: time.Minute}, nil, clk.now)
	n := signIn(t, m, db, addUser(t, db, activeUser()), nil)
	clk.advance(2 * time.Minute)
	if _, err := m.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	used := clk.now()
	m.ForgetUser(n.Session.UserID)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := storedLastSeen(t, db, n.Session.Hash); !got.Equal(used) {
		t.Errorf("stored last-seen = %v, want %v (the use before ForgetUser)", got, used)
	}
}
