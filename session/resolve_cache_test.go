package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestResolveCacheHitTouchesNothing: docs/architecture.md, "A request's path"
// 4: session.Manager.Resolve makes no store access and no allocation on a
// cache hit.
func TestResolveCacheHitTouchesNothing(t *testing.T) {
	ctx := context.Background()
	db := &txCounter{Store: backendtest.OpenBolt(t)}
	m := session.New(db, session.Config{}, nil, nil)
	m.Derive = func(id *session.Identity) any { return id.UserID }
	u := addUser(t, db, activeUser())
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resolve(ctx, token); err != nil { // loads it if Create did not cache it
		t.Fatal(err)
	}
	r0, w0 := db.views.Load(), db.updates.Load()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || db.views.Load() != r0 || db.updates.Load() != w0 {
		t.Errorf("cache hit: %.1f allocations, %d store reads, %d store writes", allocs, db.views.Load()-r0, db.updates.Load()-w0)
	}
}

// TestCachedCopyAtItsBoundaries: a cached session is trusted for less than
// CacheTTL (at exactly CacheTTL the store is read again, and a session
// deleted by another process is refused), and ends at exactly its lifetime
// even while the cached copy is still trusted.
func TestCachedCopyAtItsBoundaries(t *testing.T) {
	tests := []struct {
		name         string
		cfg          session.Config
		deleteStored bool          // delete the session from the store behind the cache
		after        time.Duration // since sign-in
		refused      bool
	}{
		{"deleted elsewhere, copy just under CacheTTL", session.Config{CacheTTL: time.Minute}, true, time.Minute - time.Nanosecond, false},
		{"deleted elsewhere, copy exactly CacheTTL old", session.Config{CacheTTL: time.Minute}, true, time.Minute, true},
		{"cached, just under the lifetime", session.Config{Lifetime: time.Hour, IdleTimeout: -1, CacheTTL: 2 * time.Hour}, false, time.Hour - time.Nanosecond, false},
		{"cached, exactly at the lifetime", session.Config{Lifetime: time.Hour, IdleTimeout: -1, CacheTTL: 2 * time.Hour}, false, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
			m := session.New(db, tt.cfg, nil, clk.now)
			token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.deleteStored {
				if err := db.Update(ctx, func(tx store.Tx) error { return tx.DeleteSession(s.Hash) }); err != nil {
					t.Fatal(err)
				}
			}
			clk.advance(tt.after)
			_, err = m.Resolve(ctx, token)
			if refused := errors.Is(err, session.ErrNoSession); refused != tt.refused {
				t.Errorf("Resolve %v after sign-in = %v, want refused %v", tt.after, err, tt.refused)
			}
		})
	}
}

// TestCreateStoresAndCachesTheSession: what Create stores is the session
// as a new one is: its IdP, its user, the logout details, created and
// last seen now, ending a lifetime later; and it is cached, so the first
// request with the cookie reads nothing from the store.
func TestCreateStoresAndCachesTheSession(t *testing.T) {
	ctx, clk := context.Background(), newClock()
	db := &txCounter{Store: backendtest.OpenBolt(t)}
	m := session.New(db, session.Config{Lifetime: 3 * time.Hour}, nil, clk.now)
	u := addUser(t, db, activeUser())
	clk.advance(time.Minute)
	logout := store.LogoutInfo{Subject: "ada", SessionID: "idx-1", SubjectFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"}
	token, s, err := m.Create(ctx, u, "okta", logout)
	if err != nil {
		t.Fatal(err)
	}
	got := storedSession(t, db, s.Hash)
	now := clk.now()
	if got.UserID != u.ID || got.IdP != "okta" || got.Logout != logout || !got.Created.Equal(now) ||
		!got.LastSeen.Equal(now) || !got.Expires.Equal(now.Add(3*time.Hour)) {
		t.Errorf("stored session = %+v; want user %s, IdP okta, logout %+v, created and last seen %v, expiring %v",
			got, u.ID, logout, now, now.Add(3*time.Hour))
	}
	if s.Hash != session.Hash(token) || got.Hash != s.Hash {
		t.Errorf("stored under %q, Create returned %q, token hashes to %q", got.Hash, s.Hash, session.Hash(token))
	}
	r0 := db.views.Load()
	id, err := m.Resolve(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if n := db.views.Load() - r0; n != 0 {
		t.Errorf("the first request after Create read the store %d times, want the cached session", n)
	}
	if !id.Expires.Equal(now.Add(3 * time.Hour)) {
		t.Errorf("identity expires %v, want %v", id.Expires, now.Add(3*time.Hour))
	}
}

// TestSecondChanceKeepsUsedSessionsCached: the cache's eviction spares a
// session used, or signed in, since its last pass: one used between every
// pair of sign-ins stays cached while the sign-ins push the others out, and
// so does each new session until its first request, so none of their
// requests read the store. (The pass stops once it has dropped enough, so
// some used sessions keep their bit: in a small cache they may all be
// used, and a pass drops at random; a cache of 200 keeps well clear.)
func TestSecondChanceKeepsUsedSessionsCached(t *testing.T) {
	ctx, clk := context.Background(), newClock()
	db := &txCounter{Store: backendtest.OpenBolt(t)}
	const size = 200
	m := session.New(db, session.Config{CacheSize: size, MaxPerUser: -1}, nil, clk.now)
	u := addUser(t, db, activeUser())
	// Past the bound once: the first pass finds every session new, so
	// used, and drops some at random.
	for range size + 2 {
		if _, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	var hot []string
	for range 2 {
		token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		hot = append(hot, token)
	}
	for i := range 3 * size { // an eviction pass every size/10 sign-ins
		fresh, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		r0 := db.views.Load()
		for _, tok := range append([]string{fresh}, hot...) {
			if _, err := m.Resolve(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := db.views.Load() - r0; n != 0 {
			t.Fatalf("after sign-in %d, the new session and those used between every sign-in were read from the store %d times: the cache dropped them", i, n)
		}
	}
}

// TestEvictionDropsATenth: a cache past its bound drops about a tenth of
// itself, not more: the rest stays cached.
func TestEvictionDropsATenth(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	m := session.New(db, session.Config{CacheSize: 50, MaxPerUser: -1}, nil, clk.now)
	u := addUser(t, db, activeUser())
	for i := range 120 {
		if _, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{}); err != nil {
			t.Fatal(err)
		}
		if n := m.Cached(); n > 50 || i >= 50 && n < 45 {
			t.Fatalf("after %d sign-ins the cache holds %d sessions, want 45 to 50", i+1, n)
		}
	}
}

// TestFlushWritesEachUseOnce: a last-seen time a Flush wrote, of a cached
// session or of one the cache dropped, is not written again by the next
// Flush when there was no use since.
func TestFlushWritesEachUseOnce(t *testing.T) {
	ctx, clk := context.Background(), newClock()
	db := &txCounter{Store: backendtest.OpenBolt(t)}
	m := session.New(db, session.Config{CacheSize: 10, TouchInterval: time.Minute, MaxPerUser: -1}, nil, clk.now)
	u := addUser(t, db, activeUser())
	tokens := createSessions(t, m, u, 30)
	clk.advance(2 * time.Minute)
	resolveAll(t, m, tokens) // some uses stay cached, others are dropped
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if got := storedSession(t, db, session.Hash(tok)).LastSeen; !got.Equal(clk.now()) {
			t.Fatalf("stored last seen %v, want %v", got, clk.now())
		}
	}
	clk.advance(2 * time.Minute)
	w0 := db.updates.Load()
	for _, final := range []bool{false, true} {
		if err := m.Flush(ctx, final); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.updates.Load() - w0; n != 0 {
		t.Errorf("flushes with no use since the last took %d write transactions, want none", n)
	}
}

// TestFlushWritesUsesByTouchInterval: a Flush writes a use once it is
// TouchInterval past the stored last-seen time (exactly that counts), and
// the final Flush (Run's as it returns) writes every use, however recent.
func TestFlushWritesUsesByTouchInterval(t *testing.T) {
	tests := []struct {
		usedAfter time.Duration
		final     bool
		written   bool
	}{
		{time.Minute - time.Second, false, false},
		{time.Minute, false, true},
		{10 * time.Second, true, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("used %v after sign-in, final %v", tt.usedAfter, tt.final), func(t *testing.T) {
			ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
			m := session.New(db, session.Config{TouchInterval: time.Minute}, nil, clk.now)
			token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			clk.advance(tt.usedAfter)
			if _, err := m.Resolve(ctx, token); err != nil {
				t.Fatal(err)
			}
			if err := m.Flush(ctx, tt.final); err != nil {
				t.Fatal(err)
			}
			want := s.LastSeen
			if tt.written {
				want = clk.now()
			}
			if got := storedSession(t, db, s.Hash).LastSeen; !got.Equal(want) {
				t.Errorf("stored last seen %v, want %v", got, want)
			}
		})
	}
}

// TestRunSweepsEveryTenFlushes: besides the sweep at its start, Run sweeps
// every tenth flush, so a session that expires while it runs is deleted
// without a restart.
func TestRunSweepsEveryTenFlushes(t *testing.T) {
	ctx, clk := context.Background(), newClock()
	db := &txCounter{Store: backendtest.OpenBolt(t)}
	cfg := session.Config{TouchInterval: 10 * time.Millisecond, Lifetime: time.Hour, IdleTimeout: -1}
	m := session.New(db, cfg, nil, clk.now)
	_, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	w0 := db.updates.Load()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The sweep at the start is Run's first write (nothing to flush).
	for deadline := time.Now().Add(10 * time.Second); db.updates.Load() == w0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep at its start")
		}
	}
	clk.advance(time.Hour + session.SweepGrace + time.Second) // expired after that sweep
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(s.Hash); return err })
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a session expired while Run ran is still stored 10 s (1,000 flushes) later (err %v)", err)
		}
	}
}

// TestUseRacingAForgetCountsForIdle: a request whose store read raced with
// a forget of its user (a group change, say) is served but not cached; its
// use still counts for the idle timeout, so the session is not ended as
// idle from its last cached use.
func TestUseRacingAForgetCountsForIdle(t *testing.T) {
	ctx, clk := context.Background(), newClock()
	db := backendtest.OpenBolt(t)
	paused := newPausingStore(db)
	m := session.New(paused, session.Config{IdleTimeout: time.Hour, TouchInterval: time.Minute}, nil, clk.now)
	u := addUser(t, db, activeUser())
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(50 * time.Minute) // the cached copy is stale: the store is read
	paused.armed.Store(true)
	served := make(chan error, 1)
	go func() { _, err := m.Resolve(ctx, token); served <- err }()
	<-paused.read
	m.ForgetUser(u.ID) // the user's groups changed while the request read
	close(paused.resume)
	if err := <-served; err != nil {
		t.Fatalf("the racing request: %v", err)
	}
	clk.advance(20 * time.Minute) // 70 minutes after sign-in, 20 after that use
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Errorf("session used 20 minutes ago, by a request that raced with a forget, ended as idle: %v", err)
	}
}

// TestForgetAllKeepsLastSeen: an instance that empties its cache on
// another's word (Invalidation{All}, after a lost notification
// connection) still writes the uses it had not flushed: the sessions live
// on, and a use lost would bring a session in use to its idle timeout.
func TestForgetAllKeepsLastSeen(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	h := &hub{listeners: map[int]func(store.Invalidation){}}
	m := session.New(&broadcastStore{db, h, 1}, session.Config{TouchInterval: time.Minute}, nil, clk.now)
	runInstances(t, h, m)
	n := signIn(t, m, db, addUser(t, db, activeUser()), nil)
	clk.advance(2 * time.Minute)
	if _, err := m.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	used := clk.now()
	h.mu.Lock()
	h.listeners[1](store.Invalidation{All: true})
	h.mu.Unlock()
	if c := m.Cached(); c != 0 {
		t.Fatalf("%d sessions cached after Invalidation{All}", c)
	}
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := storedLastSeen(t, db, n.Session.Hash); !got.Equal(used) {
		t.Errorf("stored last-seen = %v, want %v (the use before the cache was emptied)", got, used)
	}
}

// TestForgetDropsWhatItNamesHere: Forget, after the change committed,
// drops from this instance's own cache what it names, whether or not the
// transaction told the others: a session ended in the store and a user
// deactivated in it are refused at the next request, not a CacheTTL later.
func TestForgetDropsWhatItNamesHere(t *testing.T) {
	for _, told := range []bool{false, true} {
		t.Run(fmt.Sprintf("told %v", told), func(t *testing.T) {
			ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
			m := session.New(shared(db), session.Config{CacheTTL: time.Hour}, nil, clk.now)
			ended := signIn(t, m, db, addUser(t, db, activeUser()), nil)
			u := addUser(t, db, &store.User{Email: "bob@example.com", Active: true})
			deactivated := signIn(t, m, db, u, nil)
			if err := db.Update(ctx, func(tx store.Tx) error { return tx.DeleteSession(ended.Session.Hash) }); err != nil {
				t.Fatal(err)
			}
			deactivate(t, db, u.ID)
			m.Forget(store.Invalidation{Sessions: []string{ended.Session.Hash}, Users: []string{u.ID}}, told)
			for what, n := range map[string]*session.NewSession{"session deleted": ended, "user deactivated": deactivated} {
				if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
					t.Errorf("%s, then Forget: Resolve = %v, want ErrNoSession", what, err)
				}
			}
		})
	}
}

// TestFailedFlushKeepsUsesForTheNext: the last-seen times a Flush could
// not write (the store refusing writes) are written by the next one, those
// of sessions the cache had dropped too.
func TestFailedFlushKeepsUsesForTheNext(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	full := new(atomic.Bool)
	m := session.New(writesFail{db, full}, session.Config{CacheSize: 10, TouchInterval: time.Minute, MaxPerUser: -1}, nil, clk.now)
	u := addUser(t, db, activeUser())
	tokens := createSessions(t, m, u, 30)
	clk.advance(2 * time.Minute)
	resolveAll(t, m, tokens) // some uses stay cached, others are dropped
	used := clk.now()
	full.Store(true)
	if err := m.Flush(ctx, false); err == nil {
		t.Fatal("Flush with the store refusing writes: no error")
	}
	full.Store(false)
	clk.advance(10 * time.Second)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if lost := notLastSeenAt(t, db, tokens, used); lost > 0 {
		t.Errorf("%d of %d last-seen times the failed Flush held were not written by the next", lost, len(tokens))
	}
}

// cuttingStore, once armed, runs each Update as one whose batches hold
// one item (a sign-in waiting: contendedTx) and cancels a context when it
// has returned: a Run stopped between two batches of a flush.
type cuttingStore struct {
	store.Store
	armed  atomic.Bool
	cancel context.CancelFunc
}

func (c *cuttingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if !c.armed.Load() {
		return c.Store.Update(ctx, fn)
	}
	defer c.cancel()
	return c.Store.Update(ctx, func(tx store.Tx) error { return fn(contendedTx{tx}) })
}

// TestFlushCutBetweenBatchesKeepsTheRest: a Flush whose context ends
// between two batches (Run stopping) keeps the last-seen times it had not
// written, those of sessions the cache dropped too, for the next Flush
// (Run's final one).
func TestFlushCutBetweenBatchesKeepsTheRest(t *testing.T) {
	ctx, clk := context.Background(), newClock()
	cut, cancel := context.WithCancel(ctx)
	defer cancel()
	db := &cuttingStore{Store: backendtest.OpenBolt(t), cancel: cancel}
	m := session.New(db, session.Config{CacheSize: 10, TouchInterval: time.Minute, MaxPerUser: -1}, nil, clk.now)
	u := addUser(t, db, activeUser())
	tokens := createSessions(t, m, u, 30)
	clk.advance(2 * time.Minute)
	resolveAll(t, m, tokens) // most are dropped from the cache
	used := clk.now()
	db.armed.Store(true)
	if err := m.Flush(cut, false); err == nil {
		t.Fatal("Flush cut after its first batch: no error")
	}
	db.armed.Store(false)
	if err := m.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if lost := notLastSeenAt(t, db, tokens, used); lost > 0 {
		t.Errorf("%d of %d last-seen times a cut Flush had not written were not written by the next", lost, len(tokens))
	}
}

// TestSweepDeletesWhatNoRequestCouldAccept: the sweep deletes a session
// only once no request could accept it: its stored last-seen time older
// than the idle timeout plus the lag it may have (TouchInterval and a
// flush period) plus the sweep's grace, or its end past by the grace; with
// idle timeouts off, a session unused for hours stays until its lifetime.
func TestSweepDeletesWhatNoRequestCouldAccept(t *testing.T) {
	lag := 2 * time.Minute // TouchInterval 1 m, and a flush a minute
	tests := []struct {
		name    string
		idle    time.Duration
		unused  time.Duration // since sign-in, never used
		deleted bool
	}{
		{"idle timeout passed, within the lag", 10 * time.Minute, 10*time.Minute + lag + session.SweepGrace - time.Second, false},
		{"idle timeout, the lag and the grace passed", 10 * time.Minute, 10*time.Minute + lag + session.SweepGrace + time.Second, true},
		{"idle timeouts off, unused for hours", -1, 5 * time.Hour, false},
		{"idle timeouts off, past the lifetime and the grace", -1, 8*time.Hour + session.SweepGrace + time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
			cfg := session.Config{Lifetime: 8 * time.Hour, IdleTimeout: tt.idle, TouchInterval: time.Minute}
			_, s, err := session.New(db, cfg, nil, clk.now).Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			clk.advance(tt.unused)
			n, err := session.New(db, cfg, nil, clk.now).Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			gone := errors.Is(db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(s.Hash); return err }), store.ErrNotFound)
			if gone != tt.deleted || n != map[bool]int{false: 0, true: 1}[tt.deleted] {
				t.Errorf("Sweep after %v unused (idle timeout %v) deleted %d; session gone %v, want %v", tt.unused, tt.idle, n, gone, tt.deleted)
			}
		})
	}
}

// TestRunFlushesAsItStops: when Run's context ends (a reload, a shutdown)
// it writes every use it holds, however recent, before it returns.
func TestRunFlushesAsItStops(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	m := session.New(db, session.Config{TouchInterval: time.Hour}, nil, clk.now)
	token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(rctx); close(done) }()
	clk.advance(10 * time.Second)
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if got := storedSession(t, db, s.Hash).LastSeen; !got.Equal(clk.now()) {
		t.Errorf("stored last seen after Run returned = %v, want the last use, %v", got, clk.now())
	}
}

// TestRememberedUseCountsForIdle: a use this instance holds and has not
// flushed counts for the idle timeout however it is held: on the cached
// copy read again from a shared store, where the stored time gets the lag
// allowance (a use remembered past it still counts), and for a session the
// cache dropped, as Ends judges it.
func TestRememberedUseCountsForIdle(t *testing.T) {
	ctx := context.Background()
	t.Run("cached copy over a shared store", func(t *testing.T) {
		db, clk := backendtest.OpenBolt(t), newClock()
		m := session.New(shared(db), session.Config{IdleTimeout: time.Hour, TouchInterval: time.Minute}, nil, clk.now)
		token, _, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(50 * time.Minute)
		if _, err := m.Resolve(ctx, token); err != nil { // used here, not flushed
			t.Fatal(err)
		}
		clk.advance(20 * time.Minute) // 70 minutes after sign-in, 20 after the use
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Errorf("session used here 20 minutes ago ended as idle: %v", err)
		}
	})
	t.Run("dropped from the cache, by Ends", func(t *testing.T) {
		db, clk := backendtest.OpenBolt(t), newClock()
		m := session.New(db, session.Config{CacheSize: 10, IdleTimeout: time.Hour, TouchInterval: time.Minute, MaxPerUser: -1}, nil, clk.now)
		u := addUser(t, db, activeUser())
		token, s, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(50 * time.Minute)
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Fatal(err)
		}
		for range 30 { // push it out of the cache
			if _, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{}); err != nil {
				t.Fatal(err)
			}
		}
		clk.advance(20 * time.Minute)
		if _, ended := m.Ends(storedSession(t, db, s.Hash)); ended {
			t.Error("Ends: a session used 20 minutes ago, dropped from the cache, reported ended")
		}
	})
}

// createSessions is n sessions of u, made by Create (without signIn's
// transaction), their tokens in order.
func createSessions(t *testing.T, m *session.Manager, u *store.User, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	for i := range tokens {
		token, _, err := m.Create(context.Background(), u, "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = token
	}
	return tokens
}

// notLastSeenAt is how many of the sessions of tokens are stored with a
// last-seen time other than at.
func notLastSeenAt(t *testing.T, db store.Store, tokens []string, at time.Time) int {
	t.Helper()
	n := 0
	for _, tok := range tokens {
		if got := storedLastSeen(t, db, session.Hash(tok)); !got.Equal(at) {
			n++
		}
	}
	return n
}

// resolveAll resolves each of tokens on m: a use of each session.
func resolveAll(t *testing.T, m *session.Manager, tokens []string) {
	t.Helper()
	for _, tok := range tokens {
		if _, err := m.Resolve(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
}
