package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// holdClaim stands for an instance that holds the refresh claim of w's
// session with its first tokens until until, and keeps it (it claims again
// as soon as it lapses): the single-use ID claimRefresh takes.
func holdClaim(t *testing.T, w *tokenWorld, until time.Time) {
	t.Helper()
	held := &session.Tokens{AccessToken: "at-1", RefreshToken: "rt-1"} // what the world signed in with
	err := w.db.Update(w.ctx, func(tx store.Tx) error {
		_, err := tx.Consume("token_refresh", session.RefreshClaimID(w.hash, held), until)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpstreamTokensClaimLostTwice: another instance holds the refresh
// claim past the window and stores nothing. This one never presents the
// refresh token: with a valid access token it passes that at once; with
// an expired one it waits one window and, the claim lost again, gives up
// as for a failed refresh: ErrRefreshFailed (the gateway's 502 with
// Retry-After), not an error of its own (a 503), nor a wait without end.
func TestUpstreamTokensClaimLostTwice(t *testing.T) {
	const window = 200 * time.Millisecond
	for _, tc := range []struct {
		name    string
		advance time.Duration
		want    string // the access token passed; "": ErrRefreshFailed
		waits   bool   // for the window
	}{
		{"access token still valid", 55 * time.Second, "at-1", false},
		{"access token expired", 61 * time.Second, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			m := w.instance(1, newHub(), window)
			holdClaim(t, w, time.Now().Add(time.Hour))
			w.clk.advance(tc.advance)
			ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
			defer cancel()
			id, err := m.Resolve(ctx, w.token)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			u, err := m.UpstreamTokens(ctx, id, 10*time.Second, w.idp.refresh)
			took := time.Since(start)
			switch {
			case tc.want == "" && (!errors.Is(err, session.ErrRefreshFailed) || ctx.Err() != nil):
				t.Errorf("got %v, %v; want ErrRefreshFailed before the request's end", u, err)
			case tc.want != "" && (err != nil || u.Access[0] != tc.want):
				t.Errorf("got %v, %v; want %s", u, err, tc.want)
			}
			switch {
			case tc.waits && (took < window || took > window+time.Second):
				t.Errorf("gave up after %v, want after the window (%v)", took, window)
			case !tc.waits && took >= window:
				t.Errorf("answered after %v, want at once, not after the window (%v)", took, window)
			}
			if n := w.idp.calls.Load(); n != 0 {
				t.Errorf("the IdP was asked %d times, want never: the claim is another instance's", n)
			}
		})
	}
}

// TestUpstreamTokensClaimStoreFails: a store that does not take the claim
// (a write that fails once) does not hold the refresh back: it is logged,
// and the refresh goes ahead at once, unclaimed, rather than fail the
// request or wait a window for a claim nobody holds.
func TestUpstreamTokensClaimStoreFails(t *testing.T) {
	const window = 2 * time.Second
	w := newTokenWorld(t, nil)
	flaky := &flakyStore{Store: w.db}
	core, logs := observer.New(zapcore.WarnLevel)
	m := session.New(&broadcastStore{Store: flaky, hub: newHub(), self: 1}, session.Config{RefreshRaceWindow: window}, zap.New(core), w.clk.now)
	w.clk.advance(61 * time.Second)
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	flaky.failing.Store(1) // the claim's write
	start := time.Now()
	u, err := m.UpstreamTokens(w.ctx, id, 10*time.Second, w.idp.refresh)
	if err != nil || u.Access[0] != "at-2" {
		t.Fatalf("got %v, %v; want the refresh's at-2", u, err)
	}
	if took := time.Since(start); took >= window {
		t.Errorf("refreshed after %v, want at once, not after the window (%v)", took, window)
	}
	if got := logs.FilterMessageSnippet("claiming a session's token refresh for this instance failed").Len(); got != 1 {
		t.Errorf("%d WARN lines of the claim, want 1: %v", got, logs.All())
	}
	if got := w.stored(t); got.AccessToken != "at-2" {
		t.Errorf("stored %q, want at-2", got.AccessToken)
	}
}

// TestUpstreamTokensRetryOutlastsOwnClaim: with the default window (12 s,
// longer than RefreshRetry, 10 s), a failed refresh is not tried again
// before its own claim has lapsed: the next attempt would find that claim
// and wait out the window for a refresh nobody makes. During the hold-off
// the valid access token is passed, the expired one answered at once with
// ErrRefreshFailed, and the IdP is not asked.
func TestUpstreamTokensRetryOutlastsOwnClaim(t *testing.T) {
	for _, tc := range []struct {
		name    string
		advance time.Duration
		margin  time.Duration
		want    string // "": ErrRefreshFailed
	}{
		{"access token valid", 35 * time.Second, 30 * time.Second, "at-1"},
		{"access token expired", 61 * time.Second, 10 * time.Second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			m := w.instance(1, newHub(), 0) // session.DefaultRefreshRaceWindow
			w.clk.advance(tc.advance)
			w.idp.failWith(errors.New("token endpoint answered 503"))
			get := func() (*session.UpstreamTokens, error) {
				t.Helper()
				ctx, cancel := context.WithTimeout(w.ctx, 2*time.Second)
				defer cancel()
				id, err := m.Resolve(ctx, w.token)
				if err != nil {
					t.Fatal(err)
				}
				return m.UpstreamTokens(ctx, id, tc.margin, w.idp.refresh)
			}
			_, _ = get() // the failed refresh
			w.clk.advance(session.RefreshRetry + time.Second)
			start := time.Now()
			u, err := get()
			switch {
			case tc.want == "" && !errors.Is(err, session.ErrRefreshFailed):
				t.Errorf("during the hold-off: %v, %v; want ErrRefreshFailed", u, err)
			case tc.want != "" && (err != nil || u.Access[0] != tc.want):
				t.Errorf("during the hold-off: %v, %v; want %s", u, err, tc.want)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("answered after %v, want at once: it waited for its own claim", took)
			}
			if n := w.idp.calls.Load(); n != 1 {
				t.Errorf("the IdP was asked %d times, want once (the failed refresh)", n)
			}
		})
	}
}

// TestUpstreamTokensRecheckEdges: B's refresh of an expired access token
// failed, and B holds the IdP off. What another instance stores meanwhile
// decides B's next answers: a session ended elsewhere (its broadcast lost)
// signs the person out, also for routes without tokens; tokens stored
// already expired leave the failure standing; tokens without an expiry
// are passed; tokens due within the margin are passed without asking the
// IdP again before the hold-off ends; and an IdP that does not rotate
// refresh tokens renews only the access token, which B takes as well.
func TestUpstreamTokensRecheckEdges(t *testing.T) {
	const margin = 10 * time.Second
	for _, tc := range []struct {
		name string
		// meanwhile runs on another instance's behalf after B's failure.
		meanwhile func(t *testing.T, w *tokenWorld)
		want      string // the access token B passes; "": want err
		err       error
	}{
		{"session ended elsewhere", func(t *testing.T, w *tokenWorld) {
			if err := w.db.Update(w.ctx, func(tx store.Tx) error { return tx.DeleteSession(w.hash) }); err != nil {
				t.Fatal(err)
			}
		}, "", session.ErrNoSession},
		{"stored tokens expired already", func(t *testing.T, w *tokenWorld) {
			put(t, w, &session.Tokens{AccessToken: "at-x", RefreshToken: "rt-x", Expiry: w.clk.now().Add(-time.Second)})
		}, "", session.ErrRefreshFailed},
		{"stored tokens without expiry", func(t *testing.T, w *tokenWorld) {
			put(t, w, &session.Tokens{AccessToken: "at-x", RefreshToken: "rt-x"})
		}, "at-x", nil},
		{"stored tokens due within the margin", func(t *testing.T, w *tokenWorld) {
			put(t, w, &session.Tokens{AccessToken: "at-x", RefreshToken: "rt-x", Expiry: w.clk.now().Add(margin / 2)})
		}, "at-x", nil},
		{"IdP that keeps the refresh token", func(t *testing.T, w *tokenWorld) {
			put(t, w, &session.Tokens{AccessToken: "at-x", RefreshToken: "rt-1", Expiry: w.clk.now().Add(time.Minute)})
		}, "at-x", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			b := w.instance(2, newHub(), 300*time.Millisecond)
			w.clk.advance(61 * time.Second) // at-1 has expired
			w.idp.failWith(errors.New("token endpoint answered 503"))
			if _, err := w.access(t, b, margin); !errors.Is(err, session.ErrRefreshFailed) {
				t.Fatalf("B with the IdP failing: %v, want ErrRefreshFailed", err)
			}
			tc.meanwhile(t, w)
			// Two requests during the hold-off: the one that reads the
			// store, and the one the cache answers.
			for i := range 2 {
				w.clk.advance(time.Second)
				at, err := w.access(t, b, margin)
				if tc.want != "" && (err != nil || at != tc.want) || tc.want == "" && !errors.Is(err, tc.err) {
					t.Errorf("request %d during the hold-off: %q, %v; want %q, %v", i, at, err, tc.want, tc.err)
				}
			}
			if n := w.idp.calls.Load(); n != 1 {
				t.Errorf("the IdP was asked %d times, want once (the failed refresh) during the hold-off", n)
			}
		})
	}
}

// put stores t as the session's tokens, as another instance's refresh
// does.
func put(t *testing.T, w *tokenWorld, tok *session.Tokens) {
	t.Helper()
	if err := w.m.PutTokens(w.ctx, w.hash, tok); err != nil {
		t.Fatal(err)
	}
}

// TestUpstreamTokensClaimWaitNonRotating: at an IdP that does not rotate
// refresh tokens, the instance waiting for another's claimed refresh
// takes its tokens when they land (a new access token, the same refresh
// token), rather than wait out the window and present the refresh token
// again.
func TestUpstreamTokensClaimWaitNonRotating(t *testing.T) {
	const window = 2 * time.Second
	w := newTokenWorld(t, nil)
	h := newHub()
	a, b := w.instance(1, h, window), w.instance(2, h, window)
	w.clk.advance(61 * time.Second)
	asked, release := make(chan struct{}), make(chan struct{})
	w.idp.before = func() {
		if w.idp.calls.Load() == 1 {
			close(asked)
			<-release
		}
	}
	keeps := func(ctx context.Context, t *session.Tokens) (*session.Tokens, error) {
		n, err := w.idp.refresh(ctx, t)
		if n != nil {
			n.RefreshToken = t.RefreshToken
		}
		return n, err
	}
	idA, idB := w.resolve(t, a), w.resolve(t, b)
	resA := make(chan error, 1)
	go func() { _, err := a.UpstreamTokens(w.ctx, idA, time.Second, keeps); resA <- err }()
	<-asked // A holds the claim
	go func() { time.Sleep(200 * time.Millisecond); close(release) }()
	start := time.Now()
	u, err := b.UpstreamTokens(w.ctx, idB, time.Second, keeps)
	if err != nil || u.Access[0] != "at-2" {
		t.Errorf("B: %v, %v; want A's at-2", u, err)
	}
	if took := time.Since(start); took >= window {
		t.Errorf("B answered after %v, want once A's tokens landed, before the window (%v)", took, window)
	}
	if err := <-resA; err != nil {
		t.Errorf("A: %v", err)
	}
	if n := w.idp.calls.Load(); n != 1 {
		t.Errorf("the IdP was asked %d times, want once", n)
	}
}

// TestUpstreamTokensHoldOffEndsOnTime: the hold-off after a failed refresh
// of an expired access token ends RefreshRetry after it, to the
// nanosecond: the first request then asks the IdP again (and, the IdP
// back, passes its token) instead of re-reading the store for another
// instance's tokens.
func TestUpstreamTokensHoldOffEndsOnTime(t *testing.T) {
	w := newTokenWorld(t, nil)
	b := w.instance(2, newHub(), 300*time.Millisecond)
	w.clk.advance(61 * time.Second)
	w.idp.failWith(errors.New("token endpoint answered 503"))
	if _, err := w.access(t, b, 10*time.Second); !errors.Is(err, session.ErrRefreshFailed) {
		t.Fatalf("with the IdP failing: %v, want ErrRefreshFailed", err)
	}
	w.idp.fail.Store(nil)
	w.clk.advance(session.RefreshRetry - 1)
	if _, err := w.access(t, b, 10*time.Second); !errors.Is(err, session.ErrRefreshFailed) || w.idp.calls.Load() != 1 {
		t.Fatalf("a nanosecond before the hold-off's end: %v after %d refreshes, want ErrRefreshFailed after 1", err, w.idp.calls.Load())
	}
	w.clk.advance(1)
	if at, err := w.access(t, b, 10*time.Second); err != nil || at != "at-3" {
		t.Errorf("at the hold-off's end: %q, %v; want the IdP's at-3", at, err)
	}
}

// TestUpstreamTokensLifetimeOfMarginAcrossInstances: tokens that live
// exactly the route's margin count as short-lived on every instance, as
// on the one that renewed them: another instance passes them for half
// their life, and does not refresh them on its first request.
func TestUpstreamTokensLifetimeOfMarginAcrossInstances(t *testing.T) {
	const margin = 30 * time.Second
	w := newTokenWorld(t, nil)
	w.idp.ttl = margin
	h := newHub()
	a, b := w.instance(1, h, 0), w.instance(2, h, 0)
	w.clk.advance(55 * time.Second)
	if at, err := w.access(t, a, margin); err != nil || at != "at-2" {
		t.Fatalf("A: %q, %v; want at-2", at, err)
	}
	w.clk.advance(margin/2 - time.Second)
	if at, err := w.access(t, b, margin); err != nil || at != "at-2" || w.idp.calls.Load() != 1 {
		t.Errorf("B within half their life: %q, %v after %d refreshes; want at-2 after 1", at, err, w.idp.calls.Load())
	}
}

// TestUpstreamTokensClaimWaitEnds: while this instance waits for the
// refresh another holds the claim of, the wait ends early when the
// session ends elsewhere (its broadcast lost: the session is dropped here
// too, and the person signs in again) or when the request that waits
// ends (ErrRefreshFailed, the session kept); either way the IdP is not
// asked.
func TestUpstreamTokensClaimWaitEnds(t *testing.T) {
	const window = 3 * time.Second
	for _, tc := range []struct {
		name    string
		end     func(t *testing.T, w *tokenWorld, cancel context.CancelFunc)
		want    error
		resolve error // Resolve's error afterwards
	}{
		{"session ended elsewhere", func(t *testing.T, w *tokenWorld, _ context.CancelFunc) {
			if err := w.db.Update(w.ctx, func(tx store.Tx) error { return tx.DeleteSession(w.hash) }); err != nil {
				t.Error(err)
			}
		}, session.ErrNoSession, session.ErrNoSession},
		{"request ended", func(_ *testing.T, _ *tokenWorld, cancel context.CancelFunc) { cancel() }, session.ErrRefreshFailed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			m := w.instance(1, newHub(), window)
			holdClaim(t, w, time.Now().Add(time.Hour))
			w.clk.advance(61 * time.Second)
			id, err := m.Resolve(w.ctx, w.token)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(w.ctx)
			defer cancel()
			ended := make(chan struct{})
			time.AfterFunc(200*time.Millisecond, func() { defer close(ended); tc.end(t, w, cancel) })
			defer func() { <-ended }()
			start := time.Now()
			if _, err := m.UpstreamTokens(ctx, id, 10*time.Second, w.idp.refresh); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if took := time.Since(start); took >= window {
				t.Errorf("answered after %v, want when the wait ended, before the window (%v)", took, window)
			}
			if n := w.idp.calls.Load(); n != 0 {
				t.Errorf("the IdP was asked %d times, want never", n)
			}
			if _, err := m.Resolve(w.ctx, w.token); !errors.Is(err, tc.resolve) {
				t.Errorf("Resolve afterwards: %v, want %v", err, tc.resolve)
			}
		})
	}
}

// TestUpstreamTokensUnsavedKeepRenewalTime: short-lived tokens whose store
// write failed are stored by a later request with the time the IdP
// renewed them, not the time of that later write nor none: another
// instance reading them holds the refresh off to half their life, as for
// tokens stored at once.
func TestUpstreamTokensUnsavedKeepRenewalTime(t *testing.T) {
	const margin = 2 * time.Minute
	w := newTokenWorld(t, nil)
	w.idp.ttl = 30 * time.Second
	h := newHub()
	flaky := &flakyStore{Store: w.db}
	a := session.New(&broadcastStore{Store: flaky, hub: h, self: 1}, session.Config{}, nil, w.clk.now)
	b := w.instance(2, h, 0)
	flaky.failing.Store(2) // the claim's write and the renewed tokens'
	if at, err := w.access(t, a, margin); err != nil || at != "at-2" || w.stored(t).AccessToken != "at-1" {
		t.Fatalf("A: %q, %v; want at-2, unsaved", at, err)
	}
	w.clk.advance(session.RefreshRetry) // A's next request stores them
	if at, err := w.access(t, a, margin); err != nil || at != "at-2" || w.stored(t).AccessToken != "at-2" {
		t.Fatalf("A stores them: %q, %v; want at-2, stored", at, err)
	}
	w.clk.advance(time.Second)
	if at, err := w.access(t, b, margin); err != nil || at != "at-2" || w.idp.calls.Load() != 1 {
		t.Errorf("B within half their life: %q, %v after %d refreshes; want at-2 after 1", at, err, w.idp.calls.Load())
	}
}

// TestUpstreamTokensClaimWaitLands: with an expired access token, the
// tokens another instance's claimed refresh stores are this instance's
// answer, and its cache's for the next requests, when they are valid;
// tokens stored expired already are no answer: the wait gives up as for a
// failed refresh.
func TestUpstreamTokensClaimWaitLands(t *testing.T) {
	const window = 300 * time.Millisecond
	for _, tc := range []struct {
		name   string
		expiry time.Duration // of the stored tokens, from now
		want   string        // "": ErrRefreshFailed
	}{
		{"valid", time.Minute, "at-x"},
		{"expired already", -time.Second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			m := w.instance(1, newHub(), window)
			holdClaim(t, w, time.Now().Add(time.Hour))
			w.clk.advance(61 * time.Second) // at-1 has expired
			stored := make(chan struct{})
			defer func() { <-stored }()
			time.AfterFunc(100*time.Millisecond, func() {
				defer close(stored)
				if err := w.m.PutTokens(w.ctx, w.hash, &session.Tokens{AccessToken: "at-x", RefreshToken: "rt-x", Expiry: w.clk.now().Add(tc.expiry)}); err != nil {
					t.Error(err)
				}
			})
			for i := range 2 {
				at, err := w.access(t, m, 10*time.Second)
				switch {
				case tc.want == "" && i == 0:
					if !errors.Is(err, session.ErrRefreshFailed) {
						t.Errorf("request %d: %q, %v; want ErrRefreshFailed", i, at, err)
					}
				case tc.want != "" && (err != nil || at != tc.want):
					t.Errorf("request %d: %q, %v; want %s", i, at, err, tc.want)
				}
			}
			if n := w.idp.calls.Load(); n != 0 {
				t.Errorf("the IdP was asked %d times, want never: the claim is another instance's", n)
			}
		})
	}
}

// TestUpstreamTokensClaimWaitCutLeavesNoVerdict: a request that gives up
// waiting for another instance's claimed refresh leaves no failure behind
// for the session: the next request waits for that refresh in turn, and
// takes its tokens when they land, rather than be answered the first
// one's give-up (a 502) until RefreshRetry has passed.
func TestUpstreamTokensClaimWaitCutLeavesNoVerdict(t *testing.T) {
	w := newTokenWorld(t, nil)
	m := w.instance(1, newHub(), 3*time.Second)
	holdClaim(t, w, time.Now().Add(time.Hour))
	w.clk.advance(61 * time.Second) // at-1 has expired
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := m.UpstreamTokens(ctx, id, 10*time.Second, w.idp.refresh); !errors.Is(err, session.ErrRefreshFailed) {
		t.Fatalf("the request that gave up: %v, want ErrRefreshFailed", err)
	}
	stored := make(chan struct{})
	defer func() { <-stored }()
	time.AfterFunc(200*time.Millisecond, func() {
		defer close(stored)
		if err := w.m.PutTokens(w.ctx, w.hash, &session.Tokens{AccessToken: "at-x", RefreshToken: "rt-x", Expiry: w.clk.now().Add(time.Minute)}); err != nil {
			t.Error(err)
		}
	})
	if u, err := m.UpstreamTokens(w.ctx, id, 10*time.Second, w.idp.refresh); err != nil || u.Access[0] != "at-x" {
		t.Errorf("the next request: %v, %v; want the other instance's at-x", u, err)
	}
	if n := w.idp.calls.Load(); n != 0 {
		t.Errorf("the IdP was asked %d times, want never: the claim is another instance's", n)
	}
}
