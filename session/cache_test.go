package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

func TestMaxSessionsPerUser(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{MaxPerUser: 3}, nil, clk.now)
	u := addUser(t, db, activeUser())
	other := addUser(t, db, &store.User{Email: "bob@example.com", Active: true})
	bobs := signIn(t, m, db, other, nil)
	var all []*session.NewSession
	for i := range 5 {
		clk.advance(time.Minute)
		n := signIn(t, m, db, u, nil)
		all = append(all, n)
		if _, err := m.Resolve(ctx, n.Token); err != nil {
			t.Fatal(err)
		}
		switch {
		case i < 3 && len(n.Ended) != 0:
			t.Errorf("sign-in %d ended %v below the cap", i, n.Ended)
		case i >= 3 && !slices.Equal(n.Ended, []string{all[i-3].Session.Hash}):
			t.Errorf("sign-in %d ended %v, want the oldest, %s", i, n.Ended, all[i-3].Session.Hash)
		}
	}
	// The two oldest are gone from store and cache; the newest three and
	// the other user's session work.
	for i, n := range all {
		_, err := m.Resolve(ctx, n.Token)
		if gone := i < 2; gone != errors.Is(err, session.ErrNoSession) {
			t.Errorf("session %d: Resolve = %v", i, err)
		}
	}
	if _, err := m.Resolve(ctx, bobs.Token); err != nil {
		t.Errorf("another user's session: %v", err)
	}
	if got := auditTypes(t, db)[store.EventSessionRevoked]; got != 2 {
		t.Errorf("%d session.revoked events, want 2", got)
	}
	// No cap.
	m = session.New(db, session.Config{MaxPerUser: -1}, nil, clk.now)
	for range 4 {
		if n := signIn(t, m, db, u, nil); len(n.Ended) != 0 {
			t.Errorf("uncapped sign-in ended %v", n.Ended)
		}
	}
}

// TestCacheIsBounded: past CacheSize the cache drops sessions (the store
// keeps them), and last-seen times of dropped sessions still reach the
// store.
func TestCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{CacheSize: 50, TouchInterval: time.Minute}, nil, clk.now)
	var tokens []string
	for i := range 200 {
		v := addUser(t, db, &store.User{Email: fmt.Sprintf("u%d@x.io", i), Active: true})
		tokens = append(tokens, signIn(t, m, db, v, nil).Token)
	}
	if n := m.Cached(); n > 50 {
		t.Errorf("cache holds %d sessions, bound 50", n)
	}
	clk.advance(2 * time.Minute)
	for _, tok := range tokens {
		if _, err := m.Resolve(ctx, tok); err != nil {
			t.Fatalf("a session the cache dropped does not resolve: %v", err)
		}
		if n := m.Cached(); n > 50 {
			t.Fatalf("cache holds %d sessions, bound 50", n)
		}
	}
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	want := clk.now()
	var stale []string
	_ = db.View(ctx, func(tx store.Tx) error {
		for _, tok := range tokens {
			s, err := tx.Session(session.Hash(tok))
			if err != nil {
				return err
			}
			if !s.LastSeen.Equal(want) {
				stale = append(stale, s.Hash)
			}
		}
		return nil
	})
	if len(stale) != 0 {
		t.Errorf("%d of %d sessions lost their last-seen time when the cache dropped them", len(stale), len(tokens))
	}
}

// TestFlushAndSweepInBatches: a flush or sweep larger than one batch is
// several transactions, and all of it lands.
// touchSessions writes n sessions of one user to db directly, tokens
// testToken(0) to testToken(n-1), lasting eight hours, and two minutes
// later resolves each through m, so that a Flush has n last-seen times to
// write.
func touchSessions(t *testing.T, db store.Store, m *session.Manager, clk *clock, n int) {
	t.Helper()
	ctx := context.Background()
	u := addUser(t, db, activeUser())
	err := db.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			s := &store.Session{Hash: session.Hash(testToken(i)), UserID: u.ID, IdP: "okta",
				Created: clk.now(), Expires: clk.now().Add(8 * time.Hour), LastSeen: clk.now()}
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute)
	for i := range n {
		if _, err := m.Resolve(ctx, testToken(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// testToken is the i-th of the tokens touchSessions writes: made up, of the
// shape of one the Manager draws (43 base64url characters), or Resolve
// would refuse it unread.
func testToken(i int) string { return fmt.Sprintf("t%042d", i) }

func TestFlushAndSweepInBatches(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	counting := storetest.NewCounting(db)
	clk := newClock()
	m := session.New(counting, session.Config{TouchInterval: time.Minute, IdleTimeout: time.Hour, MaxPerUser: -1}, nil, clk.now)
	const n = 2505 // more than the largest batch
	touchSessions(t, db, m, clk, n)
	counting.Reset()
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := counting.Reset(); got < 3 {
		t.Errorf("flush of %d sessions took %d transactions, want batches of at most 256", n, got)
	}
	// Idle for an hour, past the two touch intervals the sweep allows for
	// a stored last-seen time to lag, and the sweep's grace: every
	// session is due.
	clk.advance(time.Hour + 3*time.Minute + session.SweepGrace)
	deleted, err := m.Sweep(ctx)
	if err != nil || deleted != n {
		t.Errorf("Sweep = %d, %v; want %d", deleted, err, n)
	}
	if got := counting.Reset(); got < 3 {
		t.Errorf("sweep of %d sessions took %d transactions, want batches of at most 256", n, got)
	}
	if m.Cached() != 0 {
		t.Errorf("%d swept sessions still cached", m.Cached())
	}
}

// contendedStore's transactions always report another Update waiting
// (Contended, read by store.RunItems), as store/bolt's do to a background batch while a
// sign-in queues behind it.
type contendedStore struct{ store.Store }

type contendedTx struct{ store.Tx }

func (contendedTx) Contended() bool { return true }

func (c contendedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return c.Store.Update(ctx, func(tx store.Tx) error { return fn(contendedTx{tx}) })
}

// TestFlushAndSweepYield: while sign-ins wait, the last-seen flush and
// the sweep commit after every item, so a sign-in waits for one item
// rather than a batch, and still write and delete everything.
func TestFlushAndSweepYield(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	counting := storetest.NewCounting(db)
	clk := newClock()
	m := session.New(contendedStore{counting}, session.Config{TouchInterval: time.Minute, IdleTimeout: time.Hour, MaxPerUser: -1}, nil, clk.now)
	const n = 30
	touchSessions(t, db, m, clk, n)
	counting.Reset()
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := counting.Reset(); got != n {
		t.Errorf("contended flush of %d sessions took %d transactions, want one per session", n, got)
	}
	_ = db.View(ctx, func(tx store.Tx) error {
		for i := range n {
			s, err := tx.Session(session.Hash(testToken(i)))
			if err != nil || !s.LastSeen.Equal(clk.now()) {
				t.Errorf("session %d after the flush: %+v, %v; want last seen %v", i, s, err, clk.now())
			}
		}
		return nil
	})
	clk.advance(time.Hour + 3*time.Minute + session.SweepGrace) // idle, past the sweep's allowance for lag and its grace
	deleted, err := m.Sweep(ctx)
	if err != nil || deleted != n {
		t.Errorf("Sweep = %d, %v; want %d", deleted, err, n)
	}
	// One per session, and the one that found nothing left.
	if got := counting.Reset(); got != n+1 {
		t.Errorf("contended sweep of %d sessions took %d transactions, want %d", n, got, n+1)
	}
}

// broadcastStore is a store shared by "instances" that tells each of them
// what the others broadcast, as a PostgreSQL LISTEN/NOTIFY backend does.
type broadcastStore struct {
	store.Store
	hub  *hub
	self int
}

type hub struct {
	mu        sync.Mutex
	listeners map[int]func(store.Invalidation)
	sent      []store.Invalidation
}

func (b *broadcastStore) Broadcast(_ context.Context, inv store.Invalidation) error {
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	b.hub.sent = append(b.hub.sent, inv)
	for id, fn := range b.hub.listeners {
		if id != b.self {
			fn(inv)
		}
	}
	return nil
}

func (b *broadcastStore) Listen(ctx context.Context, fn func(store.Invalidation)) {
	b.hub.mu.Lock()
	b.hub.listeners[b.self] = fn
	b.hub.mu.Unlock()
	<-ctx.Done()
}

func TestBroadcastInvalidation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := backendtest.OpenBolt(t)
	h := &hub{listeners: map[int]func(store.Invalidation){}}
	// Long cache TTLs: only the broadcast can make the second instance
	// notice in time.
	cfg := session.Config{CacheTTL: time.Hour}
	a := session.New(&broadcastStore{db, h, 1}, cfg, nil, nil)
	b := session.New(&broadcastStore{db, h, 2}, cfg, nil, nil)
	for _, m := range []*session.Manager{a, b} {
		go m.Run(ctx)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		n := len(h.listeners)
		h.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("managers did not start listening")
		}
	}
	u := addUser(t, db, activeUser())
	v := addUser(t, db, &store.User{Email: "bob@example.com", Active: true})
	s1 := signIn(t, a, db, u, nil)
	s2 := signIn(t, a, db, u, nil)
	s3 := signIn(t, a, db, v, nil)
	resolves := func(m *session.Manager, n *session.NewSession) bool {
		_, err := m.Resolve(ctx, n.Token)
		return err == nil
	}
	for _, n := range []*session.NewSession{s1, s2, s3} {
		if !resolves(b, n) {
			t.Fatal("second instance does not resolve a session")
		}
	}
	// Logout on a: b forgets at once.
	if _, err := a.Revoke(ctx, s1.Token, store.EventSessionLoggedOut); err != nil {
		t.Fatal(err)
	}
	if resolves(b, s1) {
		t.Error("second instance still serves a session revoked on the first")
	}
	// Deactivation on a (store change, then ForgetUser): b drops the user.
	err := db.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.User(u.ID)
		if err != nil {
			return err
		}
		cur.Active = false
		return tx.PutUser(cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	a.ForgetUser(u.ID)
	if resolves(b, s2) {
		t.Error("second instance still serves a deactivated user's session")
	}
	if !resolves(b, s3) {
		t.Error("another user's session was dropped")
	}
	// Invalidation{All} (after a lost connection) empties the cache.
	if b.Cached() == 0 {
		t.Fatal("nothing cached to drop")
	}
	h.mu.Lock()
	h.listeners[2](store.Invalidation{All: true})
	h.mu.Unlock()
	if b.Cached() != 0 {
		t.Errorf("%d sessions cached after Invalidation{All}", b.Cached())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sent) < 2 {
		t.Errorf("broadcasts: %+v", h.sent)
	}
}

// A session the cache dropped keeps the idle clock of its last use, even
// before Flush wrote that use to the store.
func TestEvictedUseCountsForIdle(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{CacheSize: 10, IdleTimeout: time.Hour, TouchInterval: time.Minute}, nil, clk.now)
	var tokens []string
	for i := range 10 {
		u := addUser(t, db, &store.User{Email: fmt.Sprintf("u%d@x.io", i), Active: true})
		tokens = append(tokens, signIn(t, m, db, u, nil).Token)
	}
	clk.advance(50 * time.Minute)
	if _, err := m.Resolve(ctx, tokens[0]); err != nil { // used at 50 min, not flushed
		t.Fatal(err)
	}
	// Push it out of the cache.
	for i := range 30 {
		u := addUser(t, db, &store.User{Email: fmt.Sprintf("v%d@x.io", i), Active: true})
		signIn(t, m, db, u, nil)
	}
	clk.advance(20 * time.Minute) // 70 minutes after sign-in, 20 after the last use
	if _, err := m.Resolve(ctx, tokens[0]); err != nil {
		t.Errorf("session used 20 minutes ago, dropped from the cache, ended as idle: %v", err)
	}
}

// TestShortenedLifetimeAndClockSetBack: a lifetime shortened since a
// session began (a reload's new config) ends it too; and a clock set back
// after an entry was cached does not keep that entry from the store's
// answer (here: the session deleted by another process) past CacheTTL.
func TestShortenedLifetimeAndClockSetBack(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	u := addUser(t, db, activeUser())
	n := signIn(t, session.New(db, session.Config{}, nil, clk.now), db, u, nil) // 8 h
	clk.advance(10 * time.Minute)
	shorter := session.New(db, session.Config{Lifetime: 5 * time.Minute, IdleTimeout: -1}, nil, clk.now)
	if _, err := shorter.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("a session 10 minutes old under a 5-minute lifetime: Resolve = %v, want ErrNoSession", err)
	}

	m := session.New(db, session.Config{IdleTimeout: -1}, nil, clk.now)
	n = signIn(t, m, db, u, nil)
	if _, err := m.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	err := db.Update(ctx, func(tx store.Tx) error { return tx.DeleteSession(n.Session.Hash) })
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(-time.Hour)
	clk.advance(session.DefaultCacheTTL)
	if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("after the clock went back an hour, a session deleted elsewhere: Resolve = %v, want ErrNoSession", err)
	}
}

// TestUseOfSessionEvictedAtItsOwnLoadCounts: a load's insertion into a
// full cache may evict the very entry it inserts (the second-chance
// sweep's second pass picks at random). The request's use was recorded on
// the entry only after the insertion, so it went nowhere, and a session
// used every 20 minutes on one instance was refused as idle (idle timeout
// 1 h) at 1h20m. A cache of one place drops the new entry half of the
// time; ten trials make a lost use all but certain to show.
func TestUseOfSessionEvictedAtItsOwnLoadCounts(t *testing.T) {
	ctx := context.Background()
	for trial := range 10 {
		db := backendtest.OpenBolt(t)
		c := newClock()
		m := session.New(db, session.Config{CacheSize: 1}, nil, c.now)
		u := addUser(t, db, activeUser())
		token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 6 { // each session used every 20 minutes, on this instance only
			c.advance(20 * time.Minute)
			for _, tok := range []string{token, other} {
				if _, err := m.Resolve(ctx, tok); err != nil {
					t.Fatalf("trial %d: a session last used 20 minutes ago is refused at use %d (%v after sign-in): %v", trial, i+1, time.Duration(i+1)*20*time.Minute, err)
				}
			}
		}
	}
}
