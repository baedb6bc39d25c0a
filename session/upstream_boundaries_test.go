package session_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
)

// TestUpstreamTokensAtTheBoundaries: the access token (at-1, living 60 s)
// is refreshed from the instant it expires within the margin, the margin
// included; and at the instant it expires it is no longer passed, even
// while the IdP is away (the failed refresh's error is the answer, not the
// expired token).
func TestUpstreamTokensAtTheBoundaries(t *testing.T) {
	const margin = 10 * time.Second
	for _, tc := range []struct {
		name    string
		advance time.Duration
		idpDown bool
		want    string // the access token passed; "" for ErrRefreshFailed
	}{
		{"just before the margin", 50*time.Second - time.Nanosecond, false, "at-1"},
		{"exactly the margin before expiry", 50 * time.Second, false, "at-2"},
		{"IdP down, just before expiry", time.Minute - time.Nanosecond, true, "at-1"},
		{"IdP down, at the expiry", time.Minute, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			if tc.idpDown {
				w.idp.failWith(errors.New("token endpoint unreachable"))
			}
			w.clk.advance(tc.advance)
			at, err := w.access(t, w.m, margin)
			switch {
			case tc.want == "" && !errors.Is(err, session.ErrRefreshFailed):
				t.Errorf("got %q, %v; want ErrRefreshFailed: the access token has expired", at, err)
			case tc.want != "" && (err != nil || at != tc.want):
				t.Errorf("got %q, %v; want %s", at, err, tc.want)
			}
		})
	}
}

// TestUpstreamTokensShortLivedWarns: an IdP whose access tokens live no
// longer than the route's margin is told to the operator (a WARN line with
// the lifetime), since its tokens are then refreshed at half their life.
func TestUpstreamTokensShortLivedWarns(t *testing.T) {
	w := newTokenWorld(t, nil)
	core, logs := observer.New(zapcore.WarnLevel)
	m := session.New(w.db, session.Config{}, zap.New(core), w.clk.now)
	w.idp.ttl = 30 * time.Second
	w.clk.advance(time.Minute)
	if at, err := w.access(t, m, 2*time.Minute); at != "at-2" || err != nil {
		t.Fatalf("%q, %v; want at-2", at, err)
	}
	lines := logs.FilterMessageSnippet("live no longer than the route's token_refresh_margin").All()
	if len(lines) != 1 {
		t.Fatalf("%d WARN lines of the short lifetime, want 1: %v", len(lines), logs.All())
	}
	if got := lines[0].ContextMap()["lifetime"]; got != 30*time.Second {
		t.Errorf("lifetime logged %v, want 30s", got)
	}
}

// TestUpstreamTokensStoredOnRetryThenStoreFailsAgain: renewed tokens the
// store did not take are stored by a later request, and then are done
// with: when a store write fails at a later refresh, the session goes on
// with its latest tokens (the refresh token the IdP now accepts), not with
// the ones once held for want of a write, whose refresh token the IdP
// retired long ago (which would end the session).
func TestUpstreamTokensStoredOnRetryThenStoreFailsAgain(t *testing.T) {
	w := newRotatingWorld(t)
	const margin = 10 * time.Second
	step := func(advance time.Duration, failWrites int32, want string) {
		t.Helper()
		w.clk.advance(advance)
		w.flaky.failing.Store(failWrites)
		if at, err := w.access(t, margin); at != want || err != nil {
			t.Fatalf("got %q, %v; want %s (refresh tokens used: %q)", at, err, want, w.rot.usedTokens())
		}
	}
	step(55*time.Second, 1, "at-2") // renewed; the write fails
	step(31*time.Second, 0, "at-2") // stored now
	if s := w.stored(t); s.RefreshToken != "rt-2" {
		t.Fatalf("stored %q, want rt-2", s.RefreshToken)
	}
	step(20*time.Second, 0, "at-3") // refreshed with rt-2, and stored
	step(55*time.Second, 1, "at-4") // refreshed with rt-3; the write fails
	if used := w.rot.usedTokens(); !slices.Equal(used, []string{"rt-1", "rt-2", "rt-3"}) {
		t.Errorf("refresh tokens used %q, want [rt-1 rt-2 rt-3]", used)
	}
}

// TestUpstreamTokensLeaderGivingUpLeavesFollowersWaiting: the request
// leading the session's flight waits for another instance's refresh (it
// holds the claim) and ends; a request that joined the flight, its own
// context alive, does not take the leader's end as its answer: it asks
// again, and once the other instance's claim lapses with nothing stored,
// refreshes and passes the renewed token.
func TestUpstreamTokensLeaderGivingUpLeavesFollowersWaiting(t *testing.T) {
	const window = 300 * time.Millisecond
	w := newTokenWorld(t, nil)
	m := w.instance(1, newHub(), window)
	holdClaim(t, w, time.Now().Add(window))
	w.clk.advance(61 * time.Second) // at-1 has expired
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	leadCtx, endLead := context.WithCancel(w.ctx)
	defer endLead()
	lead := make(chan error, 1)
	go func() { _, err := m.UpstreamTokens(leadCtx, id, 10*time.Second, w.idp.refresh); lead <- err }()
	time.Sleep(50 * time.Millisecond) // leads the flight, waiting for the claim's holder
	type answer struct {
		u   *session.UpstreamTokens
		err error
	}
	follow := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		defer cancel()
		u, err := m.UpstreamTokens(ctx, id, 10*time.Second, w.idp.refresh)
		follow <- answer{u, err}
	}()
	time.Sleep(50 * time.Millisecond) // joins the flight
	endLead()
	if err := <-lead; !errors.Is(err, context.Canceled) {
		t.Errorf("the leading request: %v, want its context's end", err)
	}
	a := <-follow
	if a.err != nil || a.u.Access[0] != "at-2" {
		t.Fatalf("the request that joined the flight: %v, %v; want at-2, refreshed once the claim lapsed", a.u, a.err)
	}
	if n := w.idp.calls.Load(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
}

// TestUpstreamTokensUnsavedBoundedByCacheSize: renewed tokens the store did
// not take are held in memory for at most Config.CacheSize sessions; past
// that the operator is told (an ERROR line), and the tokens are held only
// with the cached identity, rather than growing without bound while the
// store is away.
func TestUpstreamTokensUnsavedBoundedByCacheSize(t *testing.T) {
	clk := newClock()
	db := backendtest.OpenBolt(t)
	flaky := &flakyStore{Store: db}
	core, logs := observer.New(zapcore.ErrorLevel)
	m := session.New(flaky, session.Config{CacheSize: 1}, zap.New(core), clk.now)
	idp := &fakeIdP{clk: clk, ttl: time.Minute}
	u := addUser(t, db, activeUser())
	var tokens []string
	for range 2 {
		tok := &session.Tokens{IDToken: idToken, AccessToken: "at-1", RefreshToken: "rt-1", Expiry: clk.now().Add(time.Minute)}
		tokens = append(tokens, signIn(t, m, db, u, tok).Token)
	}
	clk.advance(55 * time.Second)
	for i, token := range tokens {
		id, err := m.Resolve(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		flaky.failing.Store(1) // storing the renewed tokens fails
		if got, err := m.UpstreamTokens(context.Background(), id, 10*time.Second, idp.refresh); err != nil || got.Access[0] == "at-1" {
			t.Fatalf("session %d: %v, %v; want the renewed token", i, got, err)
		}
	}
	if n := logs.FilterMessageSnippet("too many sessions' renewed tokens wait to be stored").Len(); n != 1 {
		t.Errorf("%d ERROR lines of the bound, want 1 (CacheSize 1, two sessions' tokens unsaved): %v", n, logs.All())
	}
}
