package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// listener collects what Listen delivers.
type listener struct {
	ch chan store.Invalidation
}

func listen(t *testing.T, db *DB) *listener {
	t.Helper()
	l := &listener{ch: make(chan store.Invalidation, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, func(inv store.Invalidation) { l.ch <- inv })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// next returns the next invalidation, failing after wait.
func (l *listener) next(t *testing.T, wait time.Duration) store.Invalidation {
	t.Helper()
	select {
	case inv := <-l.ch:
		return inv
	case <-time.After(wait):
		t.Fatalf("no invalidation within %v", wait)
		return store.Invalidation{}
	}
}

// quiet fails when anything arrives within wait.
func (l *listener) quiet(t *testing.T, wait time.Duration) {
	t.Helper()
	select {
	case inv := <-l.ch:
		t.Fatalf("unexpected invalidation %+v", inv)
	case <-time.After(wait):
	}
}

func TestBroadcastReachesOtherInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	la, lb := listen(t, a), listen(t, b)
	// The first call marks the subscription: nothing before it was seen.
	if inv := la.next(t, 10*time.Second); !inv.All {
		t.Fatalf("first call %+v, want All", inv)
	}
	if inv := lb.next(t, 10*time.Second); !inv.All {
		t.Fatalf("first call %+v, want All", inv)
	}

	sent := store.Invalidation{Sessions: []string{"h1", "h2"}, Users: []string{"u1"}}
	start := time.Now()
	if err := a.Broadcast(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	got := lb.next(t, time.Second)
	t.Logf("delivered in %v", time.Since(start))
	if !slices.Equal(got.Sessions, sent.Sessions) || !slices.Equal(got.Users, sent.Users) || got.All {
		t.Errorf("b got %+v, want %+v", got, sent)
	}
	// The sender does not hear itself.
	la.quiet(t, 300*time.Millisecond)

	if err := b.Broadcast(t.Context(), store.Invalidation{All: true}); err != nil {
		t.Fatal(err)
	}
	if inv := la.next(t, time.Second); !inv.All {
		t.Errorf("a got %+v, want All", inv)
	}
}

// An invalidation larger than a NOTIFY payload arrives whole, in pieces.
func TestBroadcastChunksLargeInvalidations(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	lb := listen(t, b)
	lb.next(t, 10*time.Second) // subscribed
	var sent store.Invalidation
	for i := range 1000 {
		sent.Sessions = append(sent.Sessions, fmt.Sprintf("%064x", i))
	}
	for i := range 300 {
		sent.Users = append(sent.Users, fmt.Sprintf("%032x", i))
	}
	if p := a.payloads(sent); len(p) < 2 || slices.ContainsFunc(p, func(s string) bool { return len(s) >= 8000 }) {
		t.Fatalf("%d payloads, sizes must stay under 8000 bytes", len(p))
	}
	if err := a.Broadcast(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	var got store.Invalidation
	for len(got.Sessions) < len(sent.Sessions) || len(got.Users) < len(sent.Users) {
		inv := lb.next(t, 2*time.Second)
		got.Sessions = append(got.Sessions, inv.Sessions...)
		got.Users = append(got.Users, inv.Users...)
	}
	if !slices.Equal(got.Sessions, sent.Sessions) || !slices.Equal(got.Users, sent.Users) {
		t.Error("chunks do not add up to what was sent")
	}
}

// When the listening connection dies, the listener reconnects, says All
// (whatever was sent meanwhile is lost), and then hears broadcasts again.
func TestListenReconnectsAfterBackendKilled(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	lb := listen(t, b)
	lb.next(t, 10*time.Second) // subscribed

	for round := range 2 {
		var killed int
		err := a.pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1`, ListenerApplicationName).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		if killed != 1 {
			t.Fatalf("round %d: terminated %d listening backends, want 1", round, killed)
		}
		start := time.Now()
		if inv := lb.next(t, 10*time.Second); !inv.All {
			t.Fatalf("round %d: after the kill got %+v, want All", round, inv)
		}
		t.Logf("round %d: resubscribed %v after the kill", round, time.Since(start))
		if err := a.Broadcast(t.Context(), store.Invalidation{Users: []string{"u-after"}}); err != nil {
			t.Fatal(err)
		}
		if inv := lb.next(t, time.Second); !slices.Equal(inv.Users, []string{"u-after"}) {
			t.Fatalf("round %d: after reconnecting got %+v", round, inv)
		}
	}
}

// A payload that is not ours is skipped, and what follows still arrives.
func TestListenSkipsForeignPayloads(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	lb := listen(t, b)
	lb.next(t, 10*time.Second)
	if _, err := a.pool.Exec(t.Context(), "SELECT pg_notify($1, 'not json')", Channel); err != nil {
		t.Fatal(err)
	}
	if err := a.Broadcast(t.Context(), store.Invalidation{Sessions: []string{"h"}}); err != nil {
		t.Fatal(err)
	}
	if inv := lb.next(t, time.Second); !slices.Equal(inv.Sessions, []string{"h"}) {
		t.Errorf("got %+v", inv)
	}
	if !strings.HasPrefix(Channel, "caddy_sso") {
		t.Errorf("channel %q is not in caddy-sso's namespace", Channel)
	}
}
