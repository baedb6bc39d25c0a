package gateway_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestLive: what is built before the app starts reaches the store once
// Start has made it, waits for a Start in progress, and gets a clear error
// when Start failed or the request gave up.
func TestLive(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rt := &gateway.Runtime{Store: db, Sessions: session.New(db, session.Config{}, nil, nil)}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name string
		// start runs the app's Start; it may end while the request waits.
		start func(l *gateway.Live)
		ctx   context.Context
		want  error // nil: served by rt's store
	}{
		{"started", func(l *gateway.Live) { l.Set(rt); l.Started() }, context.Background(), nil},
		{"starting", func(l *gateway.Live) {
			go func() { time.Sleep(50 * time.Millisecond); l.Set(rt); l.Started() }()
		}, context.Background(), nil},
		{"start failed", func(l *gateway.Live) { l.Started() }, context.Background(), gateway.ErrNotRunning},
		{"start failing", func(l *gateway.Live) {
			go func() { time.Sleep(50 * time.Millisecond); l.Started() }()
		}, context.Background(), gateway.ErrNotRunning},
		{"request gone", func(*gateway.Live) {}, cancelled, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := gateway.NewLive()
			// Before Start, forgetting does nothing and must not fail.
			l.ForgetUser("u1")
			l.ForgetSession("h1")
			tt.start(l)
			got, err := l.Running(tt.ctx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Running: %v, want %v", err, tt.want)
			}
			if tt.want == nil && got != rt {
				t.Fatalf("Running returned %p, want the started runtime %p", got, rt)
			}
			if err := l.View(tt.ctx, func(store.Tx) error { return nil }); !errors.Is(err, tt.want) {
				t.Errorf("View: %v, want %v", err, tt.want)
			}
			if err := l.Update(tt.ctx, func(store.Tx) error { return nil }); !errors.Is(err, tt.want) {
				t.Errorf("Update: %v, want %v", err, tt.want)
			}
		})
	}
}
