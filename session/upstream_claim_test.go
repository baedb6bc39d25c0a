package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// reuseDetection makes ep an IdP with refresh-token reuse detection (Auth0
// with rotation, Okta with a grace period of 0): a retired refresh token
// presented again revokes the grant, the refresh token just issued
// included.
func reuseDetection(ep *tokenEndpoint) {
	var once sync.Once
	ep.refused = func() { once.Do(ep.revoke) }
}

// TestUpstreamTokensClaimSparesReuseDetection: two instances sharing the
// store find the access token due at the same moment, at an IdP with reuse
// detection. Only the one that claims the refresh presents the refresh
// token; the other waits for its tokens. Before the claim, the other
// presented the spent rt-1 too, the IdP revoked the grant, and the session
// ended (grant_revoked) at its next refresh.
func TestUpstreamTokensClaimSparesReuseDetection(t *testing.T) {
	w := newTokenWorld(t, nil)
	ep := newTokenEndpoint(t, w.clk)
	reuseDetection(ep)
	const margin = 10 * time.Second
	w.clk.advance(55 * time.Second)
	h := newHub()
	a, b, idA, idB := w.resolvedOnTwo(t, h)
	rotated, release := make(chan struct{}), make(chan struct{})
	ep.answer = func(n int) {
		if n == 2 {
			close(rotated)
			<-release
		}
	}
	resA, resB := make(chan error, 1), make(chan error, 1)
	go func() { _, err := a.UpstreamTokens(w.ctx, idA, margin, ep.refresh); resA <- err }()
	<-rotated // A's answer is on the wire
	go func() { _, err := b.UpstreamTokens(w.ctx, idB, margin, ep.refresh); resB <- err }()
	time.Sleep(200 * time.Millisecond) // B finds the refresh claimed
	close(release)
	if err := <-resA; err != nil {
		t.Fatalf("A: %v", err)
	}
	if err := <-resB; err != nil {
		t.Fatalf("B: %v", err)
	}

	// The next rotation, at a third instance: rt-2 is alive.
	w.clk.advance(55 * time.Second)
	m3 := w.instance(3, h, 300*time.Millisecond)
	id3, err := m3.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := m3.UpstreamTokens(w.ctx, id3, margin, ep.refresh); err != nil || u.Access[0] != "at-3" {
		t.Errorf("the next refresh: %v, %v, want at-3 (the grant alive)", u, err)
	}
	if used := ep.usedTokens(); !slices.Equal(used, []string{"rt-1", "rt-2"}) {
		t.Errorf("IdP asked with %v, want [rt-1 rt-2]: once per rotation", used)
	}
	if got := revokedReasons(t, w.db); len(got) != 0 {
		t.Errorf("audit session.revoked %v", got)
	}
}

// TestUpstreamTokensClaimParallelRounds: round after round, parallel
// requests reach both instances when the access token is due, at an IdP
// with reuse detection: every request gets a valid token (the round's, or
// the last round's while the other instance refreshes), the IdP sees each
// refresh token once, and the session outlives every round.
func TestUpstreamTokensClaimParallelRounds(t *testing.T) {
	w := newTokenWorld(t, nil)
	h := newHub()
	ms := []*session.Manager{w.instance(1, h, 0), w.instance(2, h, 0)}
	ep := newTokenEndpoint(t, w.clk)
	reuseDetection(ep)
	const margin, rounds, perInstance = 10 * time.Second, 5, 4
	for r := range rounds {
		w.clk.advance(55 * time.Second)
		var wg sync.WaitGroup
		for _, m := range ms {
			for range perInstance {
				wg.Go(func() {
					id, err := m.Resolve(w.ctx, w.token)
					if err != nil {
						t.Errorf("round %d: %v", r, err)
						return
					}
					// The round's token, or the last round's,
					// still valid, which an instance that
					// found the refresh claimed passes meanwhile.
					u, err := m.UpstreamTokens(w.ctx, id, margin, ep.refresh)
					if cur, prev := fmt.Sprintf("at-%d", r+2), fmt.Sprintf("at-%d", r+1); err != nil || (u.Access[0] != cur && u.Access[0] != prev) {
						t.Errorf("round %d: %v, %v, want %s or %s", r, u, err, cur, prev)
					}
				})
			}
		}
		wg.Wait()
		if t.Failed() {
			break
		}
	}
	used := ep.usedTokens()
	want := make([]string, 0, rounds)
	for r := range rounds {
		want = append(want, fmt.Sprintf("rt-%d", r+1))
	}
	if !slices.Equal(used, want) {
		t.Errorf("IdP asked with %v, want %v: once per rotation", used, want)
	}
	if got := revokedReasons(t, w.db); len(got) != 0 {
		t.Errorf("audit session.revoked %v", got)
	}
}

// claimAndStop has instance a claim the session's refresh and stop before
// the IdP answers, as an instance stopped mid-refresh does: it holds the
// claim and stores nothing (until the test ends).
func claimAndStop(t *testing.T, w *tokenWorld, a *session.Manager, margin time.Duration) {
	t.Helper()
	stuck, unstick := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(unstick) })
	stopped := func(context.Context, *session.Tokens) (*session.Tokens, error) {
		close(stuck)
		<-unstick
		return nil, errors.New("stopped")
	}
	idA := w.resolve(t, a)
	go func() { _, _ = a.UpstreamTokens(w.ctx, idA, margin, stopped) }()
	<-stuck
}

// TestUpstreamTokensClaimOfStoppedInstanceLapses: the instance that claimed
// the refresh never stores tokens (it stopped mid-refresh). Once the claim
// has lapsed, at the end of the window, another instance claims it and
// refreshes: the session is not held back for longer.
func TestUpstreamTokensClaimOfStoppedInstanceLapses(t *testing.T) {
	const window = 300 * time.Millisecond
	w := newTokenWorld(t, nil)
	h := newHub()
	a, b := w.instance(1, h, window), w.instance(2, h, window)
	const margin = 10 * time.Second
	w.clk.advance(61 * time.Second) // expired: B's requests wait for a token
	claimAndStop(t, w, a, margin)

	start := time.Now()
	if at, err := w.access(t, b, margin); err != nil || at != "at-2" {
		t.Fatalf("B: %q, %v, want its own refresh's at-2", at, err)
	}
	if took := time.Since(start); took < window || took > window+2*time.Second {
		t.Errorf("B refreshed after %v, want once the claim lapsed (%v)", took, window)
	}
	if n := w.idp.calls.Load(); n != 1 {
		t.Errorf("B refreshed %d times, want 1", n)
	}
}

// TestUpstreamTokensClaimRecord: the claim is a single-use ID of kind
// token_refresh that names neither the refresh token nor the session's
// hash, which housekeeping prunes; one instance alone (no broadcaster)
// claims nothing, and so writes nothing more for a refresh.
func TestUpstreamTokensClaimRecord(t *testing.T) {
	claims := func(db store.Store) map[string]string {
		t.Helper()
		got := map[string]string{}
		err := db.View(context.Background(), func(tx store.Tx) error {
			return tx.ForEachConsumed(func(kind, id string, _ time.Time) error { got[id] = kind; return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	const margin = 10 * time.Second

	alone := newTokenWorld(t, nil)
	alone.clk.advance(55 * time.Second)
	if at, err := alone.access(t, alone.m, margin); err != nil || at != "at-2" {
		t.Fatalf("one instance: %q, %v", at, err)
	}
	if got := claims(alone.db); len(got) != 0 {
		t.Errorf("one instance claimed %v, want nothing", got)
	}

	w := newTokenWorld(t, nil)
	m := w.instance(1, newHub(), 0)
	w.clk.advance(55 * time.Second)
	if at, err := w.access(t, m, margin); err != nil || at != "at-2" {
		t.Fatalf("shared store: %q, %v", at, err)
	}
	got := claims(w.db)
	if len(got) != 1 {
		t.Fatalf("claims %v, want one", got)
	}
	for id, kind := range got {
		if kind != "token_refresh" || strings.Contains(id, "rt-1") || strings.Contains(id, w.hash) {
			t.Errorf("claim %q of kind %q: want kind token_refresh, naming neither the refresh token nor the session", id, kind)
		}
	}
	stats, err := store.Housekeep(w.ctx, w.db, time.Now().Add(session.DefaultRefreshRaceWindow+store.ConsumedPruneMargin+time.Second), store.HousekeepOptions{})
	if err != nil || stats.Consumed != 1 {
		t.Errorf("housekeeping pruned %d single-use IDs (%v), want the claim", stats.Consumed, err)
	}
}

// TestUpstreamTokensFailedRefreshSeesOtherInstance: B's refresh of an
// expired access token fails for a passing reason; a moment later A's
// succeeds and stores fresh tokens. During B's hold-off B asks the IdP
// nothing, but reads the store, and passes A's tokens; without them, its
// failure stands.
func TestUpstreamTokensFailedRefreshSeesOtherInstance(t *testing.T) {
	const window = 300 * time.Millisecond
	w := newTokenWorld(t, nil)
	h := newHub()
	a, b := w.instance(1, h, window), w.instance(2, h, window)
	const margin = 10 * time.Second
	w.clk.advance(61 * time.Second) // at-1 has expired
	idB, err := b.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	w.idp.failWith(errors.New("token endpoint answered 503"))
	if _, err := b.UpstreamTokens(w.ctx, idB, margin, w.idp.refresh); !errors.Is(err, session.ErrRefreshFailed) {
		t.Fatalf("B with the IdP failing: %v, want ErrRefreshFailed", err)
	}
	w.clk.advance(time.Second)
	if _, err := b.UpstreamTokens(w.ctx, idB, margin, w.idp.refresh); !errors.Is(err, session.ErrRefreshFailed) || w.idp.calls.Load() != 1 {
		t.Fatalf("B during the hold-off, nothing new stored: %v after %d refreshes, want ErrRefreshFailed after 1", err, w.idp.calls.Load())
	}
	w.idp.fail.Store(nil)
	if at, err := w.access(t, a, margin); err != nil || at != "at-3" {
		t.Fatalf("A after the IdP came back: %q, %v", at, err)
	}
	w.clk.advance(time.Second)
	if u, err := b.UpstreamTokens(w.ctx, idB, margin, w.idp.refresh); err != nil || u.Access[0] != "at-3" {
		t.Errorf("B during the hold-off, A's tokens stored: %v, %v, want A's at-3", u, err)
	}
	if n := w.idp.calls.Load(); n != 2 {
		t.Errorf("the IdP was asked %d times, want 2 (B's failed attempt, A's)", n)
	}
}

// TestUpstreamTokensShortLivedAcrossInstances: tokens living no longer than
// the margin are refreshed at half their life, however many instances
// serve the session: the time the IdP renewed them is stored with them, so
// an instance reading them holds the refresh off as the one that renewed
// them does. Before, another instance refreshed at once what the first had
// stored a second earlier, and two instances in round robin refreshed
// twice as often as one.
func TestUpstreamTokensShortLivedAcrossInstances(t *testing.T) {
	count := func(instances int) int32 {
		w := newTokenWorld(t, nil)
		w.idp.ttl = 30 * time.Second
		const margin = 2 * time.Minute
		h := newHub()
		ms := make([]*session.Manager, instances)
		for i := range ms {
			ms[i] = w.instance(i+1, h, 0)
		}
		// 60 requests, one a second, round robin over the instances.
		for i := range 60 {
			if _, err := w.access(t, ms[i%instances], margin); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			w.clk.advance(time.Second)
		}
		return w.idp.calls.Load()
	}
	one, two := count(1), count(2)
	t.Logf("refreshes: one instance %d, two instances %d", one, two)
	if two > one {
		t.Errorf("in 60 s of one request a second (tokens living 30 s, margin 2 m), two instances refreshed %d times, one instance %d", two, one)
	}
}
