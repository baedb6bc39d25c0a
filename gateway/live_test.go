package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestLive: what is built before the app starts reaches the store once
// Start has made it, waits for a Start in progress, and gets a clear error
// when Start failed or the request gave up.
func TestLive(t *testing.T) {
	db := backendtest.OpenBolt(t)
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
			l.ForgetUsers([]string{"u1"})
			l.ForgetSessions([]string{"h1"})
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

// TestLiveRetire: Retire gives back the store once the requests in flight
// have ended (Enter, and View and Update while they run), at once when
// none is, after the bound when one never ends, and in the background
// when asked to.
func TestLiveRetire(t *testing.T) {
	db := backendtest.OpenBolt(t)
	newLive := func() *gateway.Live {
		l := gateway.NewLive()
		l.Set(&gateway.Runtime{Store: db, Sessions: session.New(db, session.Config{}, nil, nil)})
		l.Started()
		return l
	}
	released := func() (func() error, chan struct{}) {
		ch := make(chan struct{})
		return func() error { close(ch); return nil }, ch
	}
	isClosed := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	logger := zap.NewNop()

	t.Run("nothing in flight", func(t *testing.T) {
		l := newLive()
		f := l.Enter()
		f.Exit()
		f.Exit() // a second Exit does nothing
		release, ch := released()
		start := time.Now()
		if err := l.Retire(time.Minute, false, release, logger); err != nil || !isClosed(ch) {
			t.Fatalf("Retire: %v, released %v", err, isClosed(ch))
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Retire waited %v with nothing in flight", d)
		}
	})
	t.Run("waits for the requests", func(t *testing.T) {
		l := newLive()
		a, b := l.Enter(), l.Enter()
		inTx := make(chan struct{})
		txDone := make(chan error)
		go func() {
			txDone <- l.Update(context.Background(), func(store.Tx) error {
				close(inTx)
				time.Sleep(100 * time.Millisecond)
				return nil
			})
		}()
		<-inTx
		release, ch := released()
		if err := l.Retire(time.Minute, true, release, logger); err != nil {
			t.Fatal(err)
		}
		a.Exit()
		time.Sleep(20 * time.Millisecond)
		if isClosed(ch) {
			t.Fatal("released with requests in flight")
		}
		b.Exit()
		if err := <-txDone; err != nil {
			t.Fatalf("the transaction in flight failed: %v", err)
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("not released once the requests ended")
		}
	})
	t.Run("tracked handler", func(t *testing.T) {
		l := newLive()
		inHandler, finish := make(chan struct{}), make(chan struct{})
		h := l.Track(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			close(inHandler)
			<-finish
		}))
		go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/scim/v2/Users", nil))
		<-inHandler
		release, ch := released()
		if err := l.Retire(time.Minute, true, release, logger); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if isClosed(ch) {
			t.Fatal("released with a tracked request in flight")
		}
		close(finish)
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("not released once the tracked request ended")
		}
	})
	t.Run("bounded", func(t *testing.T) {
		l := newLive()
		l.Enter() // never exits
		release, ch := released()
		start := time.Now()
		if err := l.Retire(50*time.Millisecond, false, release, logger); err != nil || !isClosed(ch) {
			t.Fatalf("Retire: %v, released %v", err, isClosed(ch))
		}
		if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
			t.Errorf("Retire took %v, want the 50ms bound", d)
		}
	})
}

// TestLiveRetireCountsEachRequestOnce: the store is given back only after
// every request in flight has ended, counted right whatever they do: a
// View or Update running alone (each counts itself), and a request that
// called Exit twice (a deferred call after an early one), which must not
// count as two ended and let the next request's count fall to nothing.
func TestLiveRetireCountsEachRequestOnce(t *testing.T) {
	db := backendtest.OpenBolt(t)
	for _, tc := range []struct {
		name string
		// inFlight starts what is in flight at Retire and returns what ends it.
		inFlight func(l *gateway.Live) (end func())
	}{
		{"a View alone", func(l *gateway.Live) func() { return inTransaction(t, l.View) }},
		{"an Update alone", func(l *gateway.Live) func() { return inTransaction(t, l.Update) }},
		{"after an Exit called twice", func(l *gateway.Live) func() {
			done := l.Enter()
			done.Exit()
			done.Exit() // does nothing
			f := l.Enter()
			return f.Exit
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := gateway.NewLive()
			l.Set(&gateway.Runtime{Store: db, Sessions: session.New(db, session.Config{}, nil, nil)})
			l.Started()
			end := sync.OnceFunc(tc.inFlight(l))
			defer end() // a failure below must not leave a transaction open
			released := make(chan struct{})
			if err := l.Retire(time.Minute, true, func() error { close(released); return nil }, zap.NewNop()); err != nil {
				t.Fatal(err)
			}
			select {
			case <-released:
				t.Fatal("the store was given back with a request in flight")
			case <-time.After(100 * time.Millisecond):
			}
			end()
			select {
			case <-released:
			case <-time.After(5 * time.Second):
				t.Fatal("the store was not given back once the request ended")
			}
		})
	}
}

// inTransaction runs a transaction of tx (Live's View or Update) in the
// background until the returned func is called, which waits for it to end.
func inTransaction(t *testing.T, tx func(context.Context, func(store.Tx) error) error) func() {
	t.Helper()
	in, finish, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- tx(context.Background(), func(store.Tx) error {
			close(in)
			<-finish
			return nil
		})
	}()
	<-in
	return func() {
		close(finish)
		if err := <-done; err != nil {
			t.Errorf("the transaction in flight failed: %v", err)
		}
	}
}
