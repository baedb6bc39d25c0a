package session_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// countingBroadcaster is a store whose broadcasts are counted.
type countingBroadcaster struct {
	store.Store
	sent atomic.Int32
}

func (c *countingBroadcaster) Broadcast(context.Context, store.Invalidation) error {
	c.sent.Add(1)
	return nil
}
func (c *countingBroadcaster) Listen(context.Context, func(store.Invalidation)) {}

// TestForgetBroadcastsUnlessTold: Forget tells the other instances
// after the commit when the transaction did not (told false: a store
// whose Tx cannot, or a notice PostgreSQL refused), and not when it did.
func TestForgetBroadcastsUnlessTold(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	bc := &countingBroadcaster{Store: db}
	m := session.New(bc, session.Config{}, nil, nil)
	inv := store.Invalidation{Users: []string{"u1"}}
	m.Forget(inv, false)
	if n := bc.sent.Load(); n != 1 {
		t.Errorf("Forget(told false): %d broadcasts, want 1 (the other instances would keep stale sessions)", n)
	}
	m.Forget(inv, true)
	if n := bc.sent.Load(); n != 1 {
		t.Errorf("Forget(told true): %d broadcasts in all, want still 1 (the commit told them)", n)
	}
}
