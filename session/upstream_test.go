package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// fakeIdP renews tokens as a token endpoint with refresh-token rotation
// does: each refresh returns a new access token living ttl and a new
// refresh token. fail, when set, answers instead.
type fakeIdP struct {
	clk   *clock
	ttl   time.Duration
	calls atomic.Int32
	fail  atomic.Pointer[error]
	// before, when set, runs at the start of each refresh.
	before func()
}

func (f *fakeIdP) refresh(_ context.Context, t *session.Tokens) (*session.Tokens, error) {
	n := f.calls.Add(1)
	if f.before != nil {
		f.before()
	}
	if err := f.fail.Load(); err != nil {
		return nil, *err
	}
	return &session.Tokens{IDToken: t.IDToken, AccessToken: fmt.Sprintf("at-%d", n+1),
		RefreshToken: fmt.Sprintf("rt-%d", n+1), Expiry: f.clk.now().Add(f.ttl)}, nil
}

func (f *fakeIdP) failWith(err error) { f.fail.Store(&err) }

// tokenWorld is a session signed in with access token at-1 (expiring in
// 60 s) and refresh token rt-1, on a manager with a fake clock.
type tokenWorld struct {
	ctx   context.Context
	db    store.Store
	clk   *clock
	m     *session.Manager
	idp   *fakeIdP
	token string
	hash  string
}

func newTokenWorld(t *testing.T, tok *session.Tokens) *tokenWorld {
	t.Helper()
	w := &tokenWorld{ctx: context.Background(), db: backendtest.OpenBolt(t), clk: newClock()}
	w.m = session.New(w.db, session.Config{}, nil, w.clk.now)
	w.idp = &fakeIdP{clk: w.clk, ttl: time.Minute}
	if tok == nil {
		tok = &session.Tokens{IDToken: idToken, AccessToken: "at-1", RefreshToken: "rt-1", Expiry: w.clk.now().Add(time.Minute)}
	}
	n := signIn(t, w.m, w.db, addUser(t, w.db, activeUser()), tok)
	w.token, w.hash = n.Token, n.Session.Hash
	return w
}

// access resolves the session on m and returns the access token a route
// with margin would pass.
func (w *tokenWorld) access(t *testing.T, m *session.Manager, margin time.Duration) (string, error) {
	t.Helper()
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		return "", err
	}
	u, err := m.UpstreamTokens(w.ctx, id, margin, w.idp.refresh)
	if err != nil {
		return "", err
	}
	return u.Access[0], nil
}

func (w *tokenWorld) stored(t *testing.T) *session.Tokens {
	t.Helper()
	tok, err := w.m.Tokens(w.ctx, w.hash)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestUpstreamTokensRefresh: tokens are passed from memory while fresh;
// within the margin of expiry, 50 concurrent requests cause exactly one
// refresh and all get its token; the rotated refresh token is stored; an
// access token past its expiry is renewed before it is passed; and another
// instance sharing the store passes the renewed token without refreshing.
func TestUpstreamTokensRefresh(t *testing.T) {
	w := newTokenWorld(t, nil)
	const margin = 10 * time.Second
	if at, err := w.access(t, w.m, margin); at != "at-1" || err != nil {
		t.Fatalf("fresh token = %q, %v", at, err)
	}
	w.clk.advance(55 * time.Second) // within the margin
	gate := make(chan struct{})
	w.idp.before = func() { <-gate }
	var wg sync.WaitGroup
	got := make([]string, 50)
	for i := range got {
		wg.Go(func() {
			at, err := w.access(t, w.m, margin)
			if err != nil {
				t.Error(err)
			}
			got[i] = at
		})
	}
	time.Sleep(50 * time.Millisecond) // let them all wait for the one refresh
	close(gate)
	wg.Wait()
	if n := w.idp.calls.Load(); n != 1 {
		t.Errorf("50 concurrent requests caused %d refreshes, want 1", n)
	}
	for i, at := range got {
		if at != "at-2" {
			t.Fatalf("request %d got %q, want the refreshed at-2", i, at)
		}
	}
	if s := w.stored(t); s.AccessToken != "at-2" || s.RefreshToken != "rt-2" || s.IDToken != idToken {
		t.Errorf("stored after refresh: %+v (want at-2, the rotated rt-2 and the ID token)", s)
	}

	// Past the real expiry (no request came for a while): renewed first.
	w.clk.advance(2 * time.Minute)
	if at, err := w.access(t, w.m, margin); at != "at-3" || err != nil {
		t.Errorf("after expiry: %q, %v, want at-3", at, err)
	}

	// Another instance sharing the store reads the renewed tokens.
	other := session.New(w.db, session.Config{}, nil, w.clk.now)
	if at, err := w.access(t, other, margin); at != "at-3" || err != nil || w.idp.calls.Load() != 2 {
		t.Errorf("other instance: %q, %v after %d refreshes, want at-3 after 2", at, err, w.idp.calls.Load())
	}
}

// A cached hit neither opens the sealed tokens nor allocates.
func TestUpstreamTokensCachedHitAllocatesNothing(t *testing.T) {
	w := newTokenWorld(t, nil)
	id, err := w.m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.m.UpstreamTokens(w.ctx, id, time.Second, w.idp.refresh); err != nil {
		t.Fatal(err)
	}
	// A RefreshFunc the caller holds, as the gateway does (one per IdP):
	// a method value made for each call would be the caller's allocation,
	// since the refresh flight keeps the function.
	refresh := w.idp.refresh
	if n := testing.AllocsPerRun(100, func() { _, _ = w.m.UpstreamTokens(w.ctx, id, time.Second, refresh) }); n != 0 {
		t.Errorf("cached UpstreamTokens allocates %v times", n)
	}
}

// TestUpstreamTokensRevokedGrantEndsSession: a refresh the IdP refuses for
// good ends the session, audited, on this request.
func TestUpstreamTokensRevokedGrantEndsSession(t *testing.T) {
	w := newTokenWorld(t, nil)
	w.idp.failWith(fmt.Errorf("token endpoint: invalid_grant: %w", idp.ErrGrantRevoked))
	w.clk.advance(55 * time.Second)
	if _, err := w.access(t, w.m, 10*time.Second); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("revoked grant: %v, want ErrNoSession", err)
	}
	if _, err := w.m.Resolve(w.ctx, w.token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("the session still resolves: %v", err)
	}
	if _, err := w.m.Tokens(w.ctx, w.hash); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("the session's tokens are still stored: %v", err)
	}
	var reasons []string
	_ = w.db.View(w.ctx, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: store.EventSessionRevoked})
		for _, e := range events {
			reasons = append(reasons, e.Reason)
		}
		return err
	})
	if len(reasons) != 1 || reasons[0] != session.ReasonGrantRevoked {
		t.Errorf("audit session.revoked reasons = %v, want [%s]", reasons, session.ReasonGrantRevoked)
	}
}

// TestUpstreamTokensAnotherInstanceRotatedFirst: two instances read the
// same tokens; the other one refreshes first and rotates the refresh
// token, so the IdP refuses this one's (invalid_grant). This instance then
// takes the other's tokens instead of ending the session.
func TestUpstreamTokensAnotherInstanceRotatedFirst(t *testing.T) {
	w := newTokenWorld(t, nil)
	other := session.New(w.db, session.Config{}, nil, w.clk.now)
	otherIdP := &fakeIdP{clk: w.clk, ttl: time.Minute}
	otherIdP.calls.Store(10) // its tokens are at-12, rt-12
	w.clk.advance(55 * time.Second)
	w.idp.before = func() {
		// Meanwhile, on the other instance:
		id, err := other.Resolve(w.ctx, w.token)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := other.UpstreamTokens(w.ctx, id, 10*time.Second, otherIdP.refresh); err != nil {
			t.Error(err)
		}
	}
	w.idp.failWith(fmt.Errorf("invalid_grant: %w", idp.ErrGrantRevoked))
	if at, err := w.access(t, w.m, 10*time.Second); at != "at-12" || err != nil {
		t.Fatalf("got %q, %v, want the other instance's at-12", at, err)
	}
	if s := w.stored(t); s.RefreshToken != "rt-12" {
		t.Errorf("stored refresh token %q, want the other instance's rt-12", s.RefreshToken)
	}
}

// TestUpstreamTokensFirstStoredWins: two instances refresh at once and the
// IdP answers both (a grace period for the rotated-out refresh token); the
// one that stores second keeps the first one's tokens, so that both go on
// with the same refresh token.
func TestUpstreamTokensFirstStoredWins(t *testing.T) {
	w := newTokenWorld(t, nil)
	other := session.New(w.db, session.Config{}, nil, w.clk.now)
	otherIdP := &fakeIdP{clk: w.clk, ttl: time.Minute}
	otherIdP.calls.Store(10)
	w.clk.advance(55 * time.Second)
	w.idp.before = func() {
		id, err := other.Resolve(w.ctx, w.token)
		if err == nil {
			_, err = other.UpstreamTokens(w.ctx, id, 10*time.Second, otherIdP.refresh)
		}
		if err != nil {
			t.Error(err)
		}
	}
	if at, err := w.access(t, w.m, 10*time.Second); at != "at-12" || err != nil {
		t.Fatalf("got %q, %v, want the first stored at-12", at, err)
	}
	if s := w.stored(t); s.RefreshToken != "rt-12" || s.AccessToken != "at-12" {
		t.Errorf("stored %q/%q, want the first stored at-12/rt-12", s.AccessToken, s.RefreshToken)
	}
}

// TestUpstreamTokensIdPDown: while the access token is valid, a failed
// refresh passes it on and tries again only after a pause; once expired,
// requests fail (not signed out), again with a pause between attempts.
func TestUpstreamTokensIdPDown(t *testing.T) {
	w := newTokenWorld(t, nil)
	w.idp.failWith(errors.New("token endpoint unreachable"))
	w.clk.advance(55 * time.Second)
	for range 3 {
		if at, err := w.access(t, w.m, 10*time.Second); at != "at-1" || err != nil {
			t.Fatalf("IdP down, token valid: %q, %v, want at-1", at, err)
		}
	}
	if n := w.idp.calls.Load(); n != 1 {
		t.Errorf("%d refresh attempts within the pause, want 1", n)
	}
	w.clk.advance(11 * time.Second) // past the pause, and past the expiry
	for range 3 {
		if _, err := w.access(t, w.m, 10*time.Second); err == nil || errors.Is(err, session.ErrNoSession) || errors.Is(err, session.ErrNoUpstreamToken) {
			t.Fatalf("IdP down, token expired: %v, want the refresh error", err)
		}
	}
	if n := w.idp.calls.Load(); n != 2 {
		t.Errorf("%d refresh attempts, want 2", n)
	}
	w.idp.fail.Store(nil)
	w.clk.advance(11 * time.Second)
	if at, err := w.access(t, w.m, 10*time.Second); at != "at-4" || err != nil {
		t.Errorf("IdP back: %q, %v", at, err)
	}
}

// TestUpstreamTokensWithoutRefreshToken: without a refresh token the access
// token is passed until it expires (no margin: nothing could renew it
// earlier), then the route must sign the person in again.
func TestUpstreamTokensWithoutRefreshToken(t *testing.T) {
	w := newTokenWorld(t, &session.Tokens{IDToken: idToken, AccessToken: "at-1", Expiry: newClock().now().Add(time.Minute)})
	w.clk.advance(55 * time.Second)
	if at, err := w.access(t, w.m, 10*time.Second); at != "at-1" || err != nil {
		t.Errorf("within the margin: %q, %v, want at-1", at, err)
	}
	w.clk.advance(5 * time.Second)
	if _, err := w.access(t, w.m, 10*time.Second); !errors.Is(err, session.ErrNoUpstreamToken) {
		t.Errorf("expired: %v, want ErrNoUpstreamToken", err)
	}
	if w.idp.calls.Load() != 0 {
		t.Error("refreshed without a refresh token")
	}

	// A session without an access token (signed in before a route passed
	// tokens) has nothing to pass.
	w = newTokenWorld(t, &session.Tokens{IDToken: idToken})
	if _, err := w.access(t, w.m, 10*time.Second); !errors.Is(err, session.ErrNoUpstreamToken) {
		t.Errorf("no access token: %v, want ErrNoUpstreamToken", err)
	}
}

// TestUpstreamTokensShortLived: tokens that live no longer than the margin
// are refreshed at half their life, not on every request.
func TestUpstreamTokensShortLived(t *testing.T) {
	w := newTokenWorld(t, nil)
	w.idp.ttl = 30 * time.Second
	const margin = 2 * time.Minute
	for range 5 {
		if at, err := w.access(t, w.m, margin); at != "at-2" || err != nil {
			t.Fatalf("%q, %v", at, err)
		}
	}
	if n := w.idp.calls.Load(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	w.clk.advance(16 * time.Second)
	if at, _ := w.access(t, w.m, margin); at != "at-3" {
		t.Errorf("after half the lifetime: %q, want at-3", at)
	}
}

func BenchmarkUpstreamTokensCached(b *testing.B) {
	ctx := context.Background()
	db := backendtest.OpenBolt(b)
	m := session.New(db, session.Config{}, nil, nil)
	n := signIn(b, m, db, addUser(b, db, activeUser()),
		&session.Tokens{IDToken: idToken, AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)})
	id, err := m.Resolve(ctx, n.Token)
	if err != nil {
		b.Fatal(err)
	}
	refresh := func(context.Context, *session.Tokens) (*session.Tokens, error) { return nil, errors.New("not needed") }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.UpstreamTokens(ctx, id, time.Minute, refresh); err != nil {
			b.Fatal(err)
		}
	}
}

// rotatingIdP is a token endpoint with strict refresh-token rotation (Okta,
// Auth0, PingOne): each refresh retires the refresh token it was given,
// and one retired is refused with invalid_grant. used lists the refresh
// tokens it was asked with, in order.
type rotatingIdP struct {
	clk     *clock
	mu      sync.Mutex
	current string
	n       int
	used    []string
}

func newRotatingIdP(clk *clock) *rotatingIdP { return &rotatingIdP{clk: clk, current: "rt-1", n: 1} }

func (r *rotatingIdP) refresh(_ context.Context, t *session.Tokens) (*session.Tokens, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.used = append(r.used, t.RefreshToken)
	if t.RefreshToken != r.current {
		return nil, fmt.Errorf("token endpoint: invalid_grant (refresh token rotated out): %w", idp.ErrGrantRevoked)
	}
	r.n++
	r.current = fmt.Sprintf("rt-%d", r.n)
	return &session.Tokens{IDToken: t.IDToken, AccessToken: fmt.Sprintf("at-%d", r.n),
		RefreshToken: r.current, Expiry: r.clk.now().Add(time.Minute)}, nil
}

func (r *rotatingIdP) usedTokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.used)
}

// flakyStore fails the next failing writes (Update) before running them,
// as a store that lost its connection or its disk does.
type flakyStore struct {
	store.Store
	failing atomic.Int32
}

var errStoreDown = errors.New("store: connection lost")

func (s *flakyStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.failing.Add(-1) >= 0 {
		return errStoreDown
	}
	s.failing.Store(0)
	return s.Store.Update(ctx, fn)
}

// rotatingWorld is a session (at-1, rt-1, expiring in 60 s) on a manager
// over a store whose writes can be made to fail, with a rotating IdP.
type rotatingWorld struct {
	*tokenWorld
	flaky *flakyStore
	rot   *rotatingIdP
}

func newRotatingWorld(t *testing.T) *rotatingWorld {
	t.Helper()
	w := &tokenWorld{ctx: context.Background(), db: backendtest.OpenBolt(t), clk: newClock()}
	flaky := &flakyStore{Store: w.db}
	w.m = session.New(flaky, session.Config{}, nil, w.clk.now)
	tok := &session.Tokens{IDToken: idToken, AccessToken: "at-1", RefreshToken: "rt-1", Expiry: w.clk.now().Add(time.Minute)}
	n := signIn(t, w.m, w.db, addUser(t, w.db, activeUser()), tok)
	w.token, w.hash = n.Token, n.Session.Hash
	return &rotatingWorld{tokenWorld: w, flaky: flaky, rot: newRotatingIdP(w.clk)}
}

func (w *rotatingWorld) access(t *testing.T, margin time.Duration) (string, error) {
	t.Helper()
	id, err := w.m.Resolve(w.ctx, w.token)
	if err != nil {
		return "", err
	}
	u, err := w.m.UpstreamTokens(w.ctx, id, margin, w.rot.refresh)
	if err != nil {
		return "", err
	}
	return u.Access[0], nil
}

// TestUpstreamTokensStoreWriteFailsAfterRotation: the IdP renews the tokens
// and retires rt-1, and storing the renewed ones fails once. The request
// is served the renewed access token (not a 502), the next requests too,
// without another refresh; a later request stores them, and the next
// refresh uses rt-2, the refresh token the IdP now accepts, so the session
// lives on.
func TestUpstreamTokensStoreWriteFailsAfterRotation(t *testing.T) {
	w := newRotatingWorld(t)
	const margin = 10 * time.Second
	w.clk.advance(55 * time.Second)
	w.flaky.failing.Store(1)
	if at, err := w.access(t, margin); at != "at-2" || err != nil {
		t.Errorf("refreshed, store write failed: %q, %v, want the renewed at-2", at, err)
	}
	if s := w.stored(t); s.RefreshToken != "rt-1" {
		t.Fatalf("stored %q: the write did not fail", s.RefreshToken)
	}
	if at, err := w.access(t, margin); at != "at-2" || err != nil {
		t.Errorf("next request: %q, %v, want at-2 from memory", at, err)
	}
	// Past the retry pause and the session cache's TTL (the identity
	// and its cached tokens are read again): the renewed tokens are
	// still the session's, and this request stores them.
	w.clk.advance(31 * time.Second)
	if at, err := w.access(t, margin); at != "at-2" || err != nil {
		t.Fatalf("after the cache TTL: %q, %v, want at-2", at, err)
	}
	if s := w.stored(t); s.AccessToken != "at-2" || s.RefreshToken != "rt-2" || s.IDToken != idToken {
		t.Errorf("stored after the retry: %q/%q, want at-2/rt-2 and the ID token", s.AccessToken, s.RefreshToken)
	}
	// at-2 comes within the margin: refreshed with rt-2.
	w.clk.advance(20 * time.Second)
	if at, err := w.access(t, margin); at != "at-3" || err != nil {
		t.Fatalf("next refresh: %q, %v, want at-3", at, err)
	}
	if used := w.rot.usedTokens(); !slices.Equal(used, []string{"rt-1", "rt-2"}) {
		t.Errorf("refresh tokens used %q, want [rt-1 rt-2]", used)
	}
	if s := w.stored(t); s.RefreshToken != "rt-3" {
		t.Errorf("stored %q, want rt-3", s.RefreshToken)
	}
}

// TestUpstreamTokensStoreDownThroughRefreshes: the store takes no write
// for two refreshes in a row; the second refresh uses the refresh token
// the first one brought, and once the store is back the latest tokens are
// stored over the ones it held all along.
func TestUpstreamTokensStoreDownThroughRefreshes(t *testing.T) {
	w := newRotatingWorld(t)
	const margin = 10 * time.Second
	w.flaky.failing.Store(1 << 20)
	w.clk.advance(55 * time.Second)
	if at, err := w.access(t, margin); at != "at-2" || err != nil {
		t.Fatalf("first refresh: %q, %v", at, err)
	}
	// Retries fail, and at-2 comes within the margin, past the cache TTL.
	for range 5 {
		w.clk.advance(11 * time.Second)
		if _, err := w.access(t, margin); err != nil {
			t.Fatalf("store down: %v", err)
		}
	}
	if at, err := w.access(t, margin); at != "at-3" || err != nil {
		t.Fatalf("second refresh: %q, %v, want at-3", at, err)
	}
	if used := w.rot.usedTokens(); !slices.Equal(used, []string{"rt-1", "rt-2"}) {
		t.Errorf("refresh tokens used %q, want [rt-1 rt-2]", used)
	}
	if s := w.stored(t); s.RefreshToken != "rt-1" {
		t.Fatalf("stored %q while the store was down", s.RefreshToken)
	}
	w.flaky.failing.Store(0)
	w.clk.advance(11 * time.Second)
	if at, err := w.access(t, margin); at != "at-3" || err != nil {
		t.Fatalf("store back: %q, %v, want at-3", at, err)
	}
	if s := w.stored(t); s.AccessToken != "at-3" || s.RefreshToken != "rt-3" {
		t.Errorf("stored %q/%q once the store was back, want at-3/rt-3", s.AccessToken, s.RefreshToken)
	}
}

// TestUpstreamTokensKeptWhenIDTokenRefused: the IdP renews the tokens, and
// the refresh function refuses its new ID token for a passing reason
// (returning the new tokens, with the session's ID token, and the error).
// The renewed tokens are stored and passed on; the next refresh uses the
// rotated refresh token.
func TestUpstreamTokensKeptWhenIDTokenRefused(t *testing.T) {
	w := newRotatingWorld(t)
	const margin = 10 * time.Second
	refuse := func(ctx context.Context, t *session.Tokens) (*session.Tokens, error) {
		got, err := w.rot.refresh(ctx, t)
		if err != nil {
			return nil, err
		}
		return got, errors.New("refreshed ID token: at_hash does not match the access token")
	}
	w.clk.advance(55 * time.Second)
	id, err := w.m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	u, err := w.m.UpstreamTokens(w.ctx, id, margin, refuse)
	if err != nil || u.Access[0] != "at-2" || u.ID[0] != idToken {
		t.Fatalf("ID token refused: %v, %v, want at-2 and the session's ID token", u, err)
	}
	if s := w.stored(t); s.AccessToken != "at-2" || s.RefreshToken != "rt-2" || s.IDToken != idToken {
		t.Errorf("stored %q/%q, want at-2/rt-2 and the session's ID token", s.AccessToken, s.RefreshToken)
	}
	w.clk.advance(55 * time.Second)
	if at, err := w.access(t, margin); at != "at-3" || err != nil {
		t.Fatalf("next refresh: %q, %v, want at-3", at, err)
	}
	if used := w.rot.usedTokens(); !slices.Equal(used, []string{"rt-1", "rt-2"}) {
		t.Errorf("refresh tokens used %q, want [rt-1 rt-2]", used)
	}
}

// TestUpstreamTokensLogoutDuringRefresh: a session that ends while its
// tokens are being renewed (a logout while the IdP answers), and whose
// renewed tokens the store then does not take, serves them to nobody: the
// request and the next one on the same identity get ErrNoSession, not the
// renewed access token.
func TestUpstreamTokensLogoutDuringRefresh(t *testing.T) {
	w := newRotatingWorld(t)
	w.clk.advance(55 * time.Second)
	id, err := w.m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	refresh := func(ctx context.Context, tk *session.Tokens) (*session.Tokens, error) {
		got, err := w.rot.refresh(ctx, tk)
		if _, err := w.m.Revoke(ctx, w.token, store.EventSessionLoggedOut); err != nil {
			t.Fatal(err)
		}
		w.flaky.failing.Store(1)
		return got, err
	}
	for i := range 2 {
		if u, err := w.m.UpstreamTokens(w.ctx, id, 10*time.Second, refresh); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("request %d after the logout: %v, %v; want ErrNoSession", i+1, u, err)
		}
	}
}

// TestUpstreamTokensHeldDoNotOverwriteNewer: with an IdP that does not
// rotate refresh tokens, tokens held in memory after a failed store write
// give way to newer ones another instance stored since (first stored
// wins), rather than overwrite them when stored again.
func TestUpstreamTokensHeldDoNotOverwriteNewer(t *testing.T) {
	w := newRotatingWorld(t)
	var n atomic.Int32
	n.Store(1)
	sameRefresh := func(_ context.Context, tk *session.Tokens) (*session.Tokens, error) {
		return &session.Tokens{IDToken: tk.IDToken, AccessToken: fmt.Sprintf("at-%d", n.Add(1)),
			RefreshToken: tk.RefreshToken, Expiry: w.clk.now().Add(time.Minute)}, nil
	}
	const margin = 10 * time.Second
	w.clk.advance(55 * time.Second)
	access := func(m *session.Manager) string {
		t.Helper()
		id, err := m.Resolve(w.ctx, w.token)
		if err != nil {
			t.Fatal(err)
		}
		u, err := m.UpstreamTokens(w.ctx, id, margin, sameRefresh)
		if err != nil {
			t.Fatal(err)
		}
		return u.Access[0]
	}
	w.flaky.failing.Store(1)
	if at := access(w.m); at != "at-2" {
		t.Fatalf("this instance, its write failed: %q, want at-2", at)
	}
	other := session.New(w.db, session.Config{}, nil, w.clk.now)
	if at := access(other); at != "at-3" {
		t.Fatalf("another instance: %q, want at-3", at)
	}
	w.clk.advance(11 * time.Second) // past the retry of the held tokens
	if at := access(w.m); at != "at-3" {
		t.Errorf("this instance after its retry: %q, want the newer at-3", at)
	}
	if s := w.stored(t); s.AccessToken != "at-3" {
		t.Errorf("stored %q: the held at-2 overwrote the newer at-3", s.AccessToken)
	}
}
