package session_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// countingStore counts the transactions a Manager opens.
type countingStore struct {
	store.Store
	reads, writes atomic.Int32
}

func (c *countingStore) View(ctx context.Context, fn func(store.Tx) error) error {
	c.reads.Add(1)
	return c.Store.View(ctx, fn)
}

func (c *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	c.writes.Add(1)
	return c.Store.Update(ctx, fn)
}

// TestResolveCacheHitTouchesNothing: docs/architecture.md, "A request's path"
// 4: session.Manager.Resolve makes no store access and no allocation on a
// cache hit.
func TestResolveCacheHitTouchesNothing(t *testing.T) {
	ctx := context.Background()
	db := &countingStore{Store: openStore(t)}
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
	r0, w0 := db.reads.Load(), db.writes.Load()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || db.reads.Load() != r0 || db.writes.Load() != w0 {
		t.Errorf("cache hit: %.1f allocations, %d store reads, %d store writes", allocs, db.reads.Load()-r0, db.writes.Load()-w0)
	}
}
