package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestIdleAllowsForAnotherInstanceWithAStaleEntry: instance b served the
// session a second after the sign-in and keeps that use in its cache
// entry, gone stale; instance a serves it 49 s later, a use not yet a
// TouchInterval past the stored time, so not written. When b reads the
// session again, its own remembered use is newer than the stored time;
// idleness must still allow for the lag of other instances' uses, as it
// does when b knows only the store: a session last used 75 s ago, under
// a 2 minute idle timeout, is not ended.
func TestIdleAllowsForAnotherInstanceWithAStaleEntry(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	clk := newClock()
	cfg := session.Config{IdleTimeout: 2 * time.Minute, TouchInterval: time.Minute}
	a, b := session.New(db, cfg, nil, clk.now), session.New(db, cfg, nil, clk.now)
	token, _, err := a.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
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

// TestRunSweepsAtItsStart: every config (re)load starts a new Run, and the
// sweep came only every tenth flush (10 minutes): a config reloaded more
// often never swept, and sessions nobody used again stayed in the store.
// Run sweeps once when it starts.
func TestRunSweepsAtItsStart(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	clk := newClock()
	cfg := session.Config{TouchInterval: time.Hour, Lifetime: time.Hour}
	token, _, err := session.New(db, cfg, nil, clk.now).Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Hour) // expired, never used again
	m := session.New(db, cfg, nil, clk.now)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.View(ctx, func(tx store.Tx) error {
			_, err := tx.Session(session.Hash(token))
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired session is still stored 10 s after Run started (err %v): no sweep at the start", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
