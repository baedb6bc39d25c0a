package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// StartWait bounds how long Live.Running waits for the app to start.
const StartWait = 10 * time.Second

// ErrNotRunning is Live.Running's error when the app's Start failed, or
// did not end within StartWait.
var ErrNotRunning = errors.New("sso: the sso app is not running")

// DrainWait bounds how long Live.Retire waits for the requests in flight
// before it gives back the store: a stuck request must not hang Caddy's
// stop, and a sign-in or a SCIM request that needs longer than this has
// stopped being one the client waits for.
const DrainWait = 10 * time.Second

// Live is the Runtime of an app that is configured before it runs: the
// sso app builds its routes and account operations at Provision, before
// Start opens the store, and they reach the store and the session cache
// through Live. Caddy starts its apps one by one, so a request may arrive
// a moment before Start has finished: Running waits for it.
//
// Live is also the store.Store (View, Update) and the account.Cache
// (ForgetUser, ForgetSession) of what is built at Provision. Make one
// with NewLive.
//
// Live counts the requests in flight on the app (Enter, and each View
// and Update), so that the app gives back its store only once they have
// finished with it (Retire): a reload stops the app while its old HTTP
// servers still finish their requests, and Caddy's stop may stop it before
// the http app (apps stop in map order), whose servers answer requests
// until their own stop; the sso app retires at its Cleanup then.
type Live struct {
	rt       atomic.Pointer[Runtime]
	started  chan struct{} // closed when Start ends, whether it succeeded or not
	inflight atomic.Int64
	retiring atomic.Bool
	idle     chan struct{} // one slot: inflight fell to 0 while retiring
}

// NewLive returns the Live of an app that has not started.
func NewLive() *Live { return &Live{started: make(chan struct{}), idle: make(chan struct{}, 1)} }

// InFlight is a request counted by Live.Enter.
type InFlight struct{ l *Live }

// Enter counts a request in flight until Exit; each is an atomic add.
func (l *Live) Enter() InFlight {
	l.inflight.Add(1)
	return InFlight{l}
}

// Exit ends the request's count; it may be called again (a deferred call
// after an early one), and then does nothing.
func (f *InFlight) Exit() {
	if f.l != nil {
		f.l.exit()
		f.l = nil
	}
}

// Track counts each request h serves as in flight (Enter), for handlers
// that use the store to the end of the request (SCIM).
func (l *Live) Track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := l.Enter()
		defer f.Exit()
		h.ServeHTTP(w, r)
	})
}

func (l *Live) exit() {
	if l.inflight.Add(-1) == 0 && l.retiring.Load() {
		select {
		case l.idle <- struct{}{}:
		default:
		}
	}
}

// Retire calls release (which ends the app's background work, flushing
// last-seen times, and gives back the store) once no request is in flight,
// or after wait, logging how many are still running. With
// background it returns at once and waits in a goroutine, logging the
// release's error: a reload's new config runs already, and its admin
// request need not wait for the old one's requests.
//
// First it ends the streams the app admitted (Streams.Close): they are
// not requests in flight, which a drain waits for, and the old config's
// rules must not keep admitting them after a reload (docs/security.md,
// "Streams").
func (l *Live) Retire(wait time.Duration, background bool, release func() error, logger *zap.Logger) error {
	if rt := l.rt.Load(); rt != nil && rt.Streams != nil {
		if n := rt.Streams.Close(); n > 0 {
			logger.Info("ended the streams of a retired config, for their clients to reconnect", zap.Int("streams", n))
		}
	}
	if !background {
		l.drain(wait, logger)
		return release()
	}
	go func() {
		l.drain(wait, logger)
		if err := release(); err != nil {
			logger.Error("giving back the store", zap.Error(err))
		}
	}()
	return nil
}

// drain waits until no request is in flight, at most wait.
func (l *Live) drain(wait time.Duration, logger *zap.Logger) {
	l.retiring.Store(true)
	t := time.NewTimer(wait)
	defer t.Stop()
	for l.inflight.Load() > 0 {
		select {
		case <-l.idle:
		case <-t.C:
			logger.Warn("requests still in flight on a stopped config; giving back the store they use",
				zap.Int64("requests", l.inflight.Load()), zap.Duration("waited", wait))
			return
		}
	}
}

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
	f := l.Enter()
	defer f.Exit()
	rt, err := l.Running(ctx)
	if err != nil {
		return err
	}
	return rt.Store.View(ctx, fn)
}

// Update runs fn on the running app's store, waiting for Start (Running).
func (l *Live) Update(ctx context.Context, fn func(store.Tx) error) error {
	f := l.Enter()
	defer f.Exit()
	rt, err := l.Running(ctx)
	if err != nil {
		return err
	}
	return rt.Store.Update(ctx, fn)
}

// Close does nothing: the app owns the store and closes it.
func (*Live) Close() error { return nil }

// ForgetUsers drops the users' cached sessions once the app runs (before,
// nothing is cached): account.Cache.
func (l *Live) ForgetUsers(userIDs []string) {
	if rt := l.rt.Load(); rt != nil {
		rt.Sessions.ForgetUsers(userIDs)
	}
}

// ForgetSessions drops cached sessions once the app runs.
func (l *Live) ForgetSessions(hashes []string) {
	if rt := l.rt.Load(); rt != nil {
		rt.Sessions.ForgetSessions(hashes)
	}
}

var _ store.Store = (*Live)(nil)

// SessionEnds says when a stored session ends and whether it has, by the
// running app's session config (session.Manager.Ends): account.SessionJudge,
// for the admin API's view of a user's sessions. Before the app runs only
// the stored end is known.
func (l *Live) SessionEnds(s *store.Session) (end time.Time, ended bool) {
	if rt := l.rt.Load(); rt != nil {
		return rt.Sessions.Ends(s)
	}
	return s.Expires, !time.Now().Before(s.Expires)
}
