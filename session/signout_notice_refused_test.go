package session_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// fullQueueBroadcaster is a shared store whose notices the database
// refuses, as PostgreSQL does once its NOTIFY queue is full.
type fullQueueBroadcaster struct{ store.Store }

func (fullQueueBroadcaster) Broadcast(context.Context, store.Invalidation) error {
	return errors.New("ERROR: too many notifications in the NOTIFY queue (SQLSTATE 54000)")
}
func (fullQueueBroadcaster) Listen(context.Context, func(store.Invalidation)) {}

// TestSignOutWithFullNotifyQueue: with the NOTIFY queue full, a sign-out
// still ends the session; only the notice to the other instances fails,
// logged once as `telling other instances about ended sessions`
// (docs/troubleshooting.md, "The log says the database's NOTIFY queue is
// filling up, or full").
func TestSignOutWithFullNotifyQueue(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	core, logs := observer.New(zap.WarnLevel)
	m := session.New(fullQueueBroadcaster{db}, session.Config{}, zap.New(core), nil)
	n := signIn(t, m, db, addUser(t, db, activeUser()), nil)
	if _, err := m.SignOut(ctx, n.Token); err != nil {
		t.Fatalf("sign-out failed: %v", err)
	}
	if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("after the sign-out, Resolve: %v, want ErrNoSession", err)
	}
	if got := logs.FilterMessage("telling other instances about ended sessions").Len(); got != 1 {
		t.Errorf("%d lines `telling other instances about ended sessions`, want 1", got)
	}
}
