package session_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// A session a request finds ended stays stored, its end moved to now, until
// the sweep (docs/architecture.md, "Where each rule lives"). These tests
// hold what that must not cost: a live session's place under the per-user
// cap, and a second store read per request of an expired cookie.

// txCounter is a store that counts its read and write transactions.
type txCounter struct {
	store.Store
	views, updates atomic.Int64
}

func (c *txCounter) View(ctx context.Context, fn func(store.Tx) error) error {
	c.views.Add(1)
	return c.Store.View(ctx, fn)
}

func (c *txCounter) Update(ctx context.Context, fn func(store.Tx) error) error {
	c.updates.Add(1)
	return c.Store.Update(ctx, fn)
}

// TestExpiredCookieCostsOneRead: a request whose cookie names a session
// past its idle timeout costs one read (and, the first time, the write that
// moves its end to now); each later request costs one read and no write,
// as one naming a deleted session does, on the instance that ended it and
// on any other.
func TestExpiredCookieCostsOneRead(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	cfg := session.Config{Lifetime: 8 * time.Hour, IdleTimeout: 10 * time.Minute}
	m := session.New(db, cfg, nil, clk.now)
	token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	c := &txCounter{Store: db}
	other := session.New(c, cfg, nil, clk.now) // has not cached it: load finds it idle
	if _, err := other.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("first request after the idle timeout: %v", err)
	}
	if v, u := c.views.Load(), c.updates.Load(); v != 1 || u != 1 {
		t.Errorf("the request that found it idle: %d reads and %d writes, want 1 and 1", v, u)
	}
	if got := storedSession(t, db, s.Hash).Expires; !got.Equal(clk.now()) {
		t.Errorf("stored end %v, want it moved to now (%v) and kept for the IdP's logout", got, clk.now())
	}
	clk.advance(time.Second)
	c.views.Store(0)
	c.updates.Store(0)
	for _, mm := range []*session.Manager{other, session.New(c, cfg, nil, clk.now)} {
		for range 3 {
			if _, err := mm.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
				t.Fatalf("later request: %v", err)
			}
		}
	}
	if v, u := c.views.Load(), c.updates.Load(); v != 6 || u != 0 {
		t.Errorf("6 later requests with the ended cookie: %d reads and %d writes, want 6 reads and no write", v, u)
	}
}

// TestCapSparesLiveSessionsOverEndedOnes: with max_per_user 2, a user has
// a live session (used minutes ago) and a newer one a request found idle
// (ended, stored until the sweep). A sign-in on a third device keeps the
// live one: one live session and the new one are within the cap; the ended
// one is deleted, with no session_limit event. When live sessions do exceed
// the cap (lowered by a reload), the ended ones go first and uncounted:
// the event counts the live sessions the cap ended.
func TestCapSparesLiveSessionsOverEndedOnes(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	cfg := session.Config{Lifetime: 8 * time.Hour, IdleTimeout: 10 * time.Minute, MaxPerUser: 2}
	m := session.New(db, cfg, nil, clk.now)
	u := addUser(t, db, activeUser())
	live := signIn(t, m, db, u, nil)
	clk.advance(time.Second)
	idle := signIn(t, m, db, u, nil)
	for range 3 { // live is used every 5 minutes, idle never
		clk.advance(5 * time.Minute)
		if _, err := m.Resolve(ctx, live.Token); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Resolve(ctx, idle.Token); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("idle session: %v, want ended", err)
	}
	third := signIn(t, m, db, u, nil)
	if len(third.Ended) != 0 {
		t.Errorf("the third sign-in ended %v over the limit, want none", third.Ended)
	}
	if _, err := m.Resolve(ctx, live.Token); err != nil {
		t.Errorf("the live session after a third sign-in within the cap of live sessions: %v", err)
	}
	if n := revokedOverLimit(t, db); len(n) != 0 {
		t.Errorf("session_limit events %v, want none", n)
	}
	if err := db.View(ctx, func(tx store.Tx) error {
		_, err := tx.Session(idle.Session.Hash)
		return err
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the ended session after the sign-in that made room: %v, want deleted", err)
	}

	// Ended sessions stored beside more live ones than the cap allows
	// (lowered by a reload): they go first, and uncounted; the event
	// counts the live session the cap ended.
	db = backendtest.OpenBolt(t)
	cfg.MaxPerUser = 3
	m = session.New(db, cfg, nil, clk.now)
	u = addUser(t, db, activeUser())
	var s [3]*session.NewSession
	for i := range s {
		clk.advance(time.Second)
		s[i] = signIn(t, m, db, u, nil)
	}
	for range 3 { // s[1] is never used again
		clk.advance(5 * time.Minute)
		for _, n := range []*session.NewSession{s[0], s[2]} {
			if _, err := m.Resolve(ctx, n.Token); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := m.Resolve(ctx, s[1].Token); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("idle session: %v, want ended", err)
	}
	if err := m.Flush(ctx, true); err != nil { // as a reload's stop does
		t.Fatal(err)
	}
	cfg.MaxPerUser = 2
	m = session.New(db, cfg, nil, clk.now)
	fourth := signIn(t, m, db, u, nil)
	if len(fourth.Ended) != 1 || fourth.Ended[0] != s[0].Session.Hash {
		t.Errorf("the sign-in under the lowered cap ended %v, want only the oldest live session %s", fourth.Ended, s[0].Session.Hash)
	}
	if n := revokedOverLimit(t, db); len(n) != 1 || n[0] != "1" {
		t.Errorf("session_limit events counting %q sessions, want one event of 1", n)
	}
	for _, n := range []*session.NewSession{s[2], fourth} {
		if _, err := m.Resolve(ctx, n.Token); err != nil {
			t.Errorf("a live session within the cap: %v", err)
		}
	}
}

// revokedOverLimit returns the "sessions" detail of each session_limit
// event.
func revokedOverLimit(t *testing.T, db store.Store) []string {
	t.Helper()
	var out []string
	err := db.View(context.Background(), func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Limit: 1000})
		for _, e := range events {
			if e.Type == store.EventSessionRevoked && e.Reason == session.ReasonSessionLimit {
				out = append(out, e.Detail["sessions"])
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCapDeletesOnlyTheEndedSessionsItNeeds: max 3; a user has two ended
// (idle) sessions and one live one. A fourth sign-in is one over what the
// store may hold for the user, so the oldest ended session goes, and only
// it: the other stays stored until the sweep, so that its sign-out still
// reaches the IdP's logout (docs/security.md).
func TestCapDeletesOnlyTheEndedSessionsItNeeds(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	cfg := session.Config{Lifetime: 8 * time.Hour, IdleTimeout: 10 * time.Minute, MaxPerUser: 3}
	m := session.New(db, cfg, nil, clk.now)
	u := addUser(t, db, activeUser())
	a := signIn(t, m, db, u, &session.Tokens{IDToken: idToken})
	clk.advance(time.Second)
	b := signIn(t, m, db, u, &session.Tokens{IDToken: idToken})
	clk.advance(time.Second)
	live := signIn(t, m, db, u, nil)
	for range 3 {
		clk.advance(5 * time.Minute)
		if _, err := m.Resolve(ctx, live.Token); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*session.NewSession{a, b} {
		if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
			t.Fatalf("idle session: %v", err)
		}
	}
	signIn(t, m, db, u, nil) // one over: 4 stored, cap 3
	kept := 0
	for _, n := range []*session.NewSession{a, b} {
		if err := db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(n.Session.Hash); return err }); err == nil {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("ended sessions still stored after a sign-in one over the cap: %d, want 1 (only the oldest deleted)", kept)
	}
	ended, err := m.SignOut(ctx, b.Token)
	if err != nil || ended == nil {
		t.Errorf("sign-out with the newer ended session's cookie: %+v, %v; want what the IdP's logout needs", ended, err)
	}
}

// TestCapForgetsTheEndedSessionsItDeletes: the ended sessions a sign-in
// deletes to stay within the cap (signed out, kept stored for the IdP's
// logout) are forgotten like those it ends: Forgotten is told (what holds a
// stream on one checks it again), and Stale names them for a caller that
// forgets in one Forget.
func TestCapForgetsTheEndedSessionsItDeletes(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{MaxPerUser: 2}, nil, clk.now)
	var mu sync.Mutex
	var told []string
	m.Forgotten = func(inv store.Invalidation) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, inv.Sessions...)
	}
	u := addUser(t, db, activeUser())
	out := signIn(t, m, db, u, nil)
	clk.advance(time.Second)
	signIn(t, m, db, u, nil)
	if ended, err := m.SignOut(ctx, out.Token); err != nil || ended == nil {
		t.Fatalf("SignOut: %+v, %v", ended, err)
	}
	mu.Lock()
	told = nil
	mu.Unlock()
	clk.advance(time.Second)
	third := signIn(t, m, db, u, nil) // one over the cap: the signed-out session goes
	if len(third.Ended) != 0 {
		t.Errorf("the sign-in ended %v, want no live session", third.Ended)
	}
	if err := db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(out.Session.Hash); return err }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the signed-out session after the sign-in over the cap: %v, want deleted", err)
	}
	mu.Lock()
	got := slices.Clone(told)
	mu.Unlock()
	if !slices.Contains(got, out.Session.Hash) {
		t.Errorf("Forgotten told %v, want the deleted signed-out session %s", got, out.Session.Hash)
	}
	if inv := third.Stale(nil, nil); !slices.Contains(inv.Sessions, out.Session.Hash) {
		t.Errorf("Stale = %+v, want the deleted signed-out session %s", inv, out.Session.Hash)
	}
}

// TestCapCountsOnceWhenTheWriteRunsAgain: Write may run more than once
// (the store retries a batched transaction after the first attempt rolled
// back); each run starts from scratch, so Ended lists each session the
// cap ended once, and the session_limit event counts it once.
func TestCapCountsOnceWhenTheWriteRunsAgain(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{MaxPerUser: 1}, nil, nil)
	u := addUser(t, db, activeUser())
	first := signIn(t, m, db, u, nil)
	n, err := m.Prepare("okta", store.LogoutInfo{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	errRetry := errors.New("rolled back, to run again")
	if err := db.Update(ctx, func(tx store.Tx) error {
		if err := n.Write(tx, u); err != nil {
			return err
		}
		return errRetry
	}); !errors.Is(err, errRetry) {
		t.Fatalf("first attempt: %v", err)
	}
	if err := db.Update(ctx, func(tx store.Tx) error { return n.Write(tx, u) }); err != nil {
		t.Fatal(err)
	}
	m.Remember(n)
	if len(n.Ended) != 1 || n.Ended[0] != first.Session.Hash {
		t.Errorf("Ended = %v after the second run, want only %s", n.Ended, first.Session.Hash)
	}
	if got := revokedOverLimit(t, db); len(got) != 1 || got[0] != "1" {
		t.Errorf("session_limit events counting %q sessions, want one event of 1", got)
	}
}
