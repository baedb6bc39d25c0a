package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
)

// nonRotatingIdP renews the access token and keeps the refresh token, as
// Entra ID, Google and many Keycloak configurations do.
type nonRotatingIdP struct {
	clk   *clock
	calls atomic.Int32
}

func (f *nonRotatingIdP) refresh(_ context.Context, t *session.Tokens) (*session.Tokens, error) {
	n := f.calls.Add(1)
	return &session.Tokens{IDToken: t.IDToken, AccessToken: fmt.Sprintf("at-%d", n+1),
		RefreshToken: t.RefreshToken, Expiry: f.clk.now().Add(time.Minute)}, nil
}

// TestUpstreamTokensNonRotatingRefreshWithinWindow: at an IdP that does
// not rotate refresh tokens, the session's next refresh comes within the
// race window of the last one (short-lived tokens, or a large margin).
// It claims anew and refreshes at once. When the claim named the session
// and the refresh token only, the instance found its own claim of the
// last refresh and waited the whole window, the IdP up.
func TestUpstreamTokensNonRotatingRefreshWithinWindow(t *testing.T) {
	const window, margin = time.Second, 10 * time.Second
	for _, tc := range []struct {
		name    string
		advance time.Duration // after the first refresh, at 55 s
	}{
		{"access token valid", 55 * time.Second},
		{"access token expired", 61 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			nr := &nonRotatingIdP{clk: w.clk}
			m := w.instance(1, newHub(), window)
			get := func() (string, time.Duration, error) {
				start := time.Now()
				id, err := m.Resolve(w.ctx, w.token)
				if err != nil {
					return "", 0, err
				}
				u, err := m.UpstreamTokens(w.ctx, id, margin, nr.refresh)
				if err != nil {
					return "", time.Since(start), err
				}
				return u.Access[0], time.Since(start), nil
			}
			w.clk.advance(55 * time.Second)
			if at, _, err := get(); err != nil || at != "at-2" {
				t.Fatalf("first refresh: %q, %v", at, err)
			}
			w.clk.advance(tc.advance)
			at, took, err := get()
			if err != nil || at != "at-3" {
				t.Errorf("second refresh: %q, %v, want at-3", at, err)
			}
			if took > window/2 {
				t.Errorf("the second refresh took %v (window %v): it waited for the first one's claim", took, window)
			}
		})
	}
}

// TestUpstreamTokensClaimLostValidTokenPassed: B finds the access token
// due but valid while A holds the refresh, and A's IdP is slow. B passes
// its valid token at once rather than wait for A (docs/cluster.md), and
// reads the store again after the window or once the token expires,
// whichever comes first: it takes A's tokens then, without asking the IdP
// itself. Before, B's request waited for A's tokens, or, with the IdP
// away, the window and then B's own refresh.
func TestUpstreamTokensClaimLostValidTokenPassed(t *testing.T) {
	const margin = 10 * time.Second
	for _, tc := range []struct {
		name    string
		window  time.Duration
		advance time.Duration // after B's first request, at 55 s
	}{
		{"after the window", time.Second, time.Second},
		{"after the token expired", 10 * time.Second, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			h := newHub()
			a, b := w.instance(1, h, tc.window), w.instance(2, h, tc.window)
			w.clk.advance(55 * time.Second) // at-1: valid 5 s more, due
			asked, release := make(chan struct{}), make(chan struct{})
			w.idp.before = func() { // A's refresh, the first, hangs till released
				if w.idp.calls.Load() == 1 {
					close(asked)
					<-release
				}
			}
			idA, idB := w.resolve(t, a), w.resolve(t, b)
			resA := make(chan error, 1)
			go func() { _, err := a.UpstreamTokens(w.ctx, idA, margin, w.idp.refresh); resA <- err }()
			<-asked // A holds the claim

			start := time.Now()
			u, err := b.UpstreamTokens(w.ctx, idB, margin, w.idp.refresh)
			if took := time.Since(start); err != nil || u.Access[0] != "at-1" || took > 200*time.Millisecond {
				t.Errorf("B with a valid token, A refreshing: %v, %v after %v; want at-1 at once", u, err, took)
			}
			if u, err := b.UpstreamTokens(w.ctx, idB, margin, w.idp.refresh); err != nil || u.Access[0] != "at-1" {
				t.Errorf("B's next request within the window: %v, %v; want at-1 from memory", u, err)
			}
			close(release)
			if err := <-resA; err != nil {
				t.Fatalf("A: %v", err)
			}
			w.clk.advance(tc.advance)
			if u, err := b.UpstreamTokens(w.ctx, idB, margin, w.idp.refresh); err != nil || u.Access[0] != "at-2" {
				t.Errorf("B %s: %v, %v; want A's at-2", tc.name, u, err)
			}
			if n := w.idp.calls.Load(); n != 1 {
				t.Errorf("the IdP was asked %d times, want once (A)", n)
			}
		})
	}
}

// TestUpstreamTokensRequestDeadlineEndsItsWait: a request whose context
// ends while the session's refresh is under way returns then, with
// ErrRefreshFailed wrapping its context's error, whether it joined the
// flight or leads it; the refresh goes on, and the next request passes
// its tokens. Before, a request that joined the flight waited for the
// leader, and a leader for the IdP, however short its own deadline.
func TestUpstreamTokensRequestDeadlineEndsItsWait(t *testing.T) {
	const margin, deadline = 10 * time.Second, 200 * time.Millisecond
	w := newTokenWorld(t, nil)
	m := w.instance(1, newHub(), time.Second)
	// Refresh n hangs until release[n-1] closes, but not forever: a wait
	// it does not bound fails the test rather than hang it.
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	w.idp.before = func() {
		select {
		case <-release[w.idp.calls.Load()-1]:
		case <-time.After(3 * time.Second):
		}
	}
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	wait := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(w.ctx, deadline)
		defer cancel()
		start := time.Now()
		_, err := m.UpstreamTokens(ctx, id, margin, w.idp.refresh)
		if took := time.Since(start); !errors.Is(err, session.ErrRefreshFailed) || !errors.Is(err, context.DeadlineExceeded) || took > deadline+300*time.Millisecond {
			t.Errorf("%s, deadline %v: %v after %v; want ErrRefreshFailed at its deadline", name, deadline, err, took)
		}
	}
	next := func(want string, calls int32) {
		t.Helper()
		if at, err := w.access(t, m, margin); err != nil || at != want || w.idp.calls.Load() != calls {
			t.Errorf("the next request: %q, %v after %d refreshes; want %s after %d", at, err, w.idp.calls.Load(), want, calls)
		}
	}

	w.clk.advance(61 * time.Second) // at-1 has expired
	lead := make(chan error, 1)
	go func() { _, err := m.UpstreamTokens(w.ctx, id, margin, w.idp.refresh); lead <- err }()
	time.Sleep(50 * time.Millisecond) // leads the flight, the IdP hanging
	wait("a request joining the flight")
	close(release[0])
	if err := <-lead; err != nil {
		t.Errorf("the leading request, without a deadline: %v, want the refresh's tokens", err)
	}
	next("at-2", 1)

	w.clk.advance(61 * time.Second) // at-2 has expired
	wait("a request leading the flight")
	close(release[1])
	next("at-3", 2) // the refresh went on; this request joins it or reads its result
}

// TestUpstreamTokensRefreshFailedRetryAt: a failed refresh's error says
// when the session asks the IdP again, which a gateway gives as
// Retry-After: RefreshRetry later for one instance; with instances
// sharing the store, not before the claim of the failed attempt ends
// (the race window, 12 s by default), and a request at RefreshRetry still
// meets the failure. Before, the 502 said 10 s either way.
func TestUpstreamTokensRefreshFailedRetryAt(t *testing.T) {
	const margin = 10 * time.Second
	for _, tc := range []struct {
		name      string
		shared    bool
		wantRetry time.Duration
	}{
		{"one instance", false, session.RefreshRetry},
		{"instances sharing the store", true, session.DefaultRefreshRaceWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			m := w.m
			if tc.shared {
				m = w.instance(1, newHub(), 0)
			}
			w.clk.advance(61 * time.Second)
			w.idp.failWith(errors.New("token endpoint answered 503"))
			id, err := m.Resolve(w.ctx, w.token)
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.UpstreamTokens(w.ctx, id, margin, w.idp.refresh)
			rf, ok := errors.AsType[*session.RefreshFailedError](err)
			if !ok || !errors.Is(err, session.ErrRefreshFailed) {
				t.Fatalf("failed refresh: %v, want a *RefreshFailedError", err)
			}
			if retry := rf.RetryAt.Sub(w.clk.now()); retry < tc.wantRetry-time.Second || retry > tc.wantRetry {
				t.Errorf("RetryAt %v from now, want about %v", retry, tc.wantRetry)
			}
			w.idp.fail.Store(nil) // back, before the retry time
			w.clk.advance(rf.RetryAt.Sub(w.clk.now()) - 500*time.Millisecond)
			_, err = m.UpstreamTokens(w.ctx, id, margin, w.idp.refresh)
			if again, ok := errors.AsType[*session.RefreshFailedError](err); !ok || !again.RetryAt.Equal(rf.RetryAt) || w.idp.calls.Load() != 1 {
				t.Errorf("just before RetryAt: %v after %d refreshes; want the failure with the same RetryAt, the IdP not asked", err, w.idp.calls.Load())
			}
		})
	}
}

// TestUpstreamTokensRefreshPanicFailsTheRequest: a refresh that panics
// fails its requests with ErrRefreshFailed. The flight runs in a goroutine
// of its own (so that a request's context can end its wait), where a
// panic nothing recovers would stop the whole server.
func TestUpstreamTokensRefreshPanicFailsTheRequest(t *testing.T) {
	w := newTokenWorld(t, nil)
	w.clk.advance(61 * time.Second)
	id, err := w.m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	panics := func(context.Context, *session.Tokens) (*session.Tokens, error) { panic("a bug in the IdP client") }
	if _, err := w.m.UpstreamTokens(w.ctx, id, 10*time.Second, panics); !errors.Is(err, session.ErrRefreshFailed) {
		t.Errorf("a refresh that panics: %v, want ErrRefreshFailed", err)
	}
}
