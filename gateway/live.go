package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// StartWait bounds how long Live.Running waits for the app to start.
const StartWait = 10 * time.Second

// ErrNotRunning is Live.Running's error when the app's Start failed, or
// did not end within StartWait.
var ErrNotRunning = errors.New("sso: the sso app is not running")

// Live is the Runtime of an app that is configured before it runs: the
// sso app builds its routes and account operations at Provision, before
// Start opens the store, and they reach the store and the session cache
// through Live. Caddy starts its apps one by one, so a request may arrive
// a moment before Start has finished: Running waits for it.
//
// Live is also the store.Store (View, Update) and the account.Cache
// (ForgetUser, ForgetSession) of what is built at Provision. Make one
// with NewLive.
type Live struct {
	rt      atomic.Pointer[Runtime]
	started chan struct{} // closed when Start ends, whether it succeeded or not
}

// NewLive returns the Live of an app that has not started.
func NewLive() *Live { return &Live{started: make(chan struct{})} }

// Set makes rt what the app runs on; Start calls it once it succeeded.
func (l *Live) Set(rt *Runtime) { l.rt.Store(rt) }

// Started records that Start has ended, whether it succeeded or not; it
// must be called exactly once.
func (l *Live) Started() { close(l.started) }

// Load returns what Start made, or nil before Start succeeded.
func (l *Live) Load() *Runtime { return l.rt.Load() }

// Running returns what Start made, waiting at most StartWait for Start
// when it has not ended yet.
func (l *Live) Running(ctx context.Context) (*Runtime, error) {
	if rt := l.rt.Load(); rt != nil {
		return rt, nil
	}
	t := time.NewTimer(StartWait)
	defer t.Stop()
	select {
	case <-l.started:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if rt := l.rt.Load(); rt != nil {
		return rt, nil
	}
	return nil, ErrNotRunning
}

// View runs fn on the running app's store, waiting for Start (Running).
func (l *Live) View(ctx context.Context, fn func(store.Tx) error) error {
	rt, err := l.Running(ctx)
	if err != nil {
		return err
	}
	return rt.Store.View(ctx, fn)
}

// Update runs fn on the running app's store, waiting for Start (Running).
func (l *Live) Update(ctx context.Context, fn func(store.Tx) error) error {
	rt, err := l.Running(ctx)
	if err != nil {
		return err
	}
	return rt.Store.Update(ctx, fn)
}

// Close does nothing: the app owns the store and closes it.
func (*Live) Close() error { return nil }

// ForgetUser drops the user's cached sessions once the app runs (before,
// nothing is cached).
func (l *Live) ForgetUser(userID string) {
	if rt := l.rt.Load(); rt != nil {
		rt.Sessions.ForgetUser(userID)
	}
}

// ForgetSession drops one cached session once the app runs.
func (l *Live) ForgetSession(hash string) {
	if rt := l.rt.Load(); rt != nil {
		rt.Sessions.ForgetSession(hash)
	}
}

var _ store.Store = (*Live)(nil)
