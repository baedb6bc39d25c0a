package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestRunSweepsAtItsStart: every config (re)load starts a new Run, and the
// sweep came only every tenth flush (10 minutes): a config reloaded more
// often never swept, and sessions nobody used again stayed in the store.
// Run sweeps once when it starts.
func TestRunSweepsAtItsStart(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
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
