package session_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// firstUpdateHook is a store that runs hook once, just before its next
// write transaction: another instance's write landing between what a
// Manager read and the write it decided on.
type firstUpdateHook struct {
	store.Store
	hook func()
}

func (s *firstUpdateHook) Update(ctx context.Context, fn func(store.Tx) error) error {
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return s.Store.Update(ctx, fn)
}

// TestSignOutOnTwoInstancesAtOnceAuditsOnce: a double click's two POSTs
// reach instances a and b together. Both read the session live; a's
// write commits first. b's write re-reads the session, finds it signed
// out, and answers with the IdP's logout (Before) without writing or
// auditing again: one session.logged_out event for one sign-out.
func TestSignOutOnTwoInstancesAtOnceAuditsOnce(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := newClock()
	a := session.New(db, session.Config{}, nil, c.now)
	hooked := &firstUpdateHook{Store: db}
	b := session.New(hooked, session.Config{}, nil, c.now)
	n := signIn(t, a, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
	hooked.hook = func() {
		if e, err := a.SignOut(ctx, n.Token); err != nil || e == nil || e.Before {
			t.Errorf("first click on a = %+v, %v", e, err)
		}
	}
	e, err := b.SignOut(ctx, n.Token)
	if err != nil || e == nil || !e.Before || e.IDToken() != idToken {
		t.Errorf("second click on b = %+v, %v; want the IdP's logout, Before", e, err)
	}
	if got := loggedOutEvents(t, db); got != 1 {
		t.Errorf("%d session.logged_out events for one double click, want 1", got)
	}
}

// TestIdleEndKeepsASignOutThatCameFirst: instance b finds a session idle
// (its clock runs 30 s ahead of a's) and moves its stored end to now; a's
// sign-out commits between b's read and b's write. b's write must leave the
// earlier, signed-out end in place: moved to b's now it would reopen the
// session on a (whose clock has not reached b's) right after its sign-out.
func TestIdleEndKeepsASignOutThatCameFirst(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := newClock()
	cfg := session.Config{IdleTimeout: time.Hour}
	a := session.New(db, cfg, nil, c.now)
	hooked := &firstUpdateHook{Store: db}
	b := session.New(hooked, cfg, nil, func() time.Time { return c.now().Add(30 * time.Second) })
	n := signIn(t, a, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
	c.advance(2 * time.Minute) // a use stored after b started: b judges idleness exactly
	if _, err := a.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Hour - 20*time.Second) // idle on b, not yet on a
	var signedOut time.Time
	hooked.hook = func() {
		if e, err := a.SignOut(ctx, n.Token); err != nil || e == nil || e.Before {
			t.Errorf("sign-out on a = %+v, %v", e, err)
		}
		signedOut = storedSession(t, db, n.Session.Hash).Expires
	}
	if _, err := b.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("b resolves the idle session: %v", err)
	}
	if signedOut.IsZero() {
		t.Fatal("b wrote nothing: the sign-out did not land between its read and its write")
	}
	if got := storedSession(t, db, n.Session.Hash).Expires; !got.Equal(signedOut) {
		t.Errorf("stored end %v after b's idle end, want the sign-out's %v", got, signedOut)
	}
	if _, err := a.Resolve(ctx, n.Token); err == nil {
		t.Error("a admits the session it signed out")
	}
}

// TestSignOutKeepsNoCredentialOfAnyKind: whatever tokens a session held, its
// sign-out leaves only the ID token stored for the IdP's logout: an access
// token without a refresh token (an IdP that issues none), or a refresh
// token whose access token was dropped, goes as both together do. A blob
// that no longer opens (corrupt, or sealed under a key since retired) goes
// whole: it may still hold them for whoever gets the key back.
func TestSignOutKeepsNoCredentialOfAnyKind(t *testing.T) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, tt := range []struct {
		name    string
		tokens  *session.Tokens
		corrupt bool
		want    *session.Tokens // stored after the sign-out; nil: no blob
	}{
		{"access token only", &session.Tokens{IDToken: idToken, AccessToken: "at-1", Expiry: exp}, false, &session.Tokens{IDToken: idToken}},
		{"refresh token only", &session.Tokens{IDToken: idToken, RefreshToken: "rt-1"}, false, &session.Tokens{IDToken: idToken}},
		{"blob that does not open", &session.Tokens{IDToken: idToken, AccessToken: "at-1", RefreshToken: "rt-1", Expiry: exp}, true, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			m := session.New(db, session.Config{}, nil, nil)
			n := signIn(t, m, db, addUser(t, db, activeUser()), tt.tokens)
			if tt.corrupt {
				blob := storedBlob(t, db, n.Session.Hash)
				if len(blob) < 2 {
					t.Fatalf("stored blob %x, want sealed tokens", blob)
				}
				blob = append([]byte(nil), blob...)
				blob[len(blob)-1] ^= 0xff // the seal's tag no longer matches
				if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutSessionTokens(n.Session.Hash, blob) }); err != nil {
					t.Fatal(err)
				}
			}
			if e, err := m.SignOut(ctx, n.Token); err != nil || e == nil || e.Before {
				t.Fatalf("SignOut = %+v, %v", e, err)
			}
			if tt.want == nil {
				if blob := storedBlob(t, db, n.Session.Hash); blob != nil {
					t.Errorf("a blob that does not open is still stored after the sign-out: %d bytes", len(blob))
				}
				return
			}
			var kept *session.Tokens
			if err := db.View(ctx, func(tx store.Tx) (err error) {
				kept, err = session.StoredTokens(tx, n.Session.Hash)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if kept == nil || kept.IDToken != tt.want.IDToken || kept.AccessToken != "" || kept.RefreshToken != "" {
				t.Errorf("stored after the sign-out: %+v; want the ID token alone", kept)
			}
		})
	}
}

// TestSignOutOfSessionItsUserMayNotUse: a session whose user was made
// inactive, or put back to pending approval, after signing in is refused
// by every request (which deletes it), so its sign-out ends nothing a request could
// use: the IdP's logout goes on (Before), with no session.logged_out event
// and no write, as for an expired session.
func TestSignOutOfSessionItsUserMayNotUse(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		change func(*store.User)
	}{
		{"inactive", func(u *store.User) { u.Active = false }},
		{"pending approval", func(u *store.User) { u.Pending = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			c := &txCounter{Store: db}
			m := session.New(c, session.Config{}, nil, nil)
			u := addUser(t, db, activeUser())
			n := signIn(t, m, db, u, &session.Tokens{IDToken: idToken})
			tt.change(u)
			addUser(t, db, u)
			writes := c.updates.Load()
			e, err := m.SignOut(ctx, n.Token)
			if err != nil || e == nil || !e.Before || e.IDToken() != idToken {
				t.Fatalf("SignOut = %+v, %v; want the IdP's logout, Before", e, err)
			}
			if got := loggedOutEvents(t, db); got != 0 {
				t.Errorf("%d session.logged_out events, want 0", got)
			}
			if w := c.updates.Load() - writes; w != 0 {
				t.Errorf("the sign-out wrote %d times, want none", w)
			}
		})
	}
}

// TestCookieAtItsStoredEndTakesNoWrite: a session ends at its stored end,
// to the nanosecond (a request then is refused). A request arriving exactly
// then finds nothing to move: one read, no write transaction, as for any
// later request.
func TestCookieAtItsStoredEndTakesNoWrite(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	cfg := session.Config{Lifetime: 8 * time.Hour}
	m := session.New(db, cfg, nil, clk.now)
	token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	c := &txCounter{Store: db}
	other := session.New(c, cfg, nil, clk.now)
	clk.advance(storedSession(t, db, s.Hash).Expires.Sub(clk.now()))
	if _, err := other.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("a request at the session's stored end: %v, want ErrNoSession", err)
	}
	if v, u := c.views.Load(), c.updates.Load(); v != 1 || u != 0 {
		t.Errorf("the request at the stored end: %d reads and %d writes, want 1 and 0", v, u)
	}
}

// TestLateSignOutAtTheSessionsEndAuditsNothing: a sign-out the store
// could not read at the very instant the session reached its stored end
// ends nothing a request could use (one then is refused), so when it is
// recorded later the session goes without a session.logged_out event, as
// an expired session's end never has one.
func TestLateSignOutAtTheSessionsEndAuditsNothing(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := newClock()
	away := &awayStore{Store: db}
	m := session.New(away, session.Config{}, nil, c.now)
	n := signIn(t, m, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
	c.advance(storedSession(t, db, n.Session.Hash).Expires.Sub(c.now()))
	signOutWhileAway(t, m, away, n.Token)
	c.advance(time.Second)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := loggedOutEvents(t, db); got != 0 {
		t.Errorf("%d session.logged_out events for a sign-out at the session's end, want 0", got)
	}
}

// TestLateSignOutReachesOtherInstances: a sign-out the store could not
// record is told to the other instances when it is recorded: one that had
// the session cached (a long CacheTTL) refuses it at once, not an hour
// later.
func TestLateSignOutReachesOtherInstances(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := backendtest.OpenBolt(t)
	h := newHub()
	cfg := session.Config{CacheTTL: time.Hour}
	away := &awayStore{Store: db}
	a := session.New(&broadcastStore{away, h, 1}, cfg, nil, nil)
	b := session.New(&broadcastStore{db, h, 2}, cfg, nil, nil)
	go b.Run(ctx)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		n := len(h.listeners)
		h.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b did not start listening")
		}
	}
	n := signIn(t, a, db, addUser(t, db, activeUser()), nil)
	if _, err := b.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	away.away.Store(true)
	if _, err := a.SignOut(ctx, n.Token); err == nil {
		t.Fatal("SignOut with the store away: no error")
	}
	if _, err := b.Resolve(ctx, n.Token); err != nil {
		t.Fatalf("b before the sign-out is recorded: %v (the test means nothing)", err)
	}
	away.away.Store(false)
	if err := a.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("b once the sign-out is recorded: %v, want ErrNoSession", err)
	}
}

// TestLateSignOutRecordedOnce: once a Flush has recorded a sign-out the
// store could not take, it is done with: the next Flush writes nothing
// for it (it took a write transaction at every flush for the session's
// whole lifetime, and its place among the sign-outs kept).
func TestLateSignOutRecordedOnce(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	away := &awayStore{Store: db}
	c := &txCounter{Store: away}
	m := session.New(c, session.Config{}, nil, nil)
	n := signIn(t, m, db, addUser(t, db, activeUser()), nil)
	signOutWhileAway(t, m, away, n.Token)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := loggedOutEvents(t, db); got != 1 {
		t.Fatalf("%d session.logged_out events once the store is back, want 1", got)
	}
	writes := c.updates.Load()
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if w := c.updates.Load() - writes; w != 0 {
		t.Errorf("a second Flush took %d write transactions, want none", w)
	}
}

// TestTokensRefusedOnceTheSessionEnds: a session that has ended, though
// still stored, has tokens no one may read, refresh or store any more: at
// its stored end to the nanosecond (a request then is refused), and past
// a lifetime shortened since the sign-in (a reload), which holds for the
// sessions it finds, as for requests.
func TestTokensRefusedOnceTheSessionEnds(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		lifetime time.Duration // of the Manager reading the tokens
		after    func(stored *store.Session, now time.Time) time.Duration
	}{
		{"at its stored end", 0, func(s *store.Session, now time.Time) time.Duration { return s.Expires.Sub(now) }},
		{"past a lifetime shortened since", time.Hour, func(*store.Session, time.Time) time.Duration { return 2 * time.Hour }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			c := newClock()
			n := signIn(t, session.New(db, session.Config{}, nil, c.now), db, addUser(t, db, activeUser()),
				&session.Tokens{IDToken: idToken, AccessToken: "at-1", RefreshToken: "rt-1", Expiry: c.now().Add(time.Hour)})
			m := session.New(db, session.Config{Lifetime: tt.lifetime}, nil, c.now)
			c.advance(tt.after(storedSession(t, db, n.Session.Hash), c.now()))
			if tok, err := m.Tokens(ctx, n.Session.Hash); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("Tokens = %+v, %v; want ErrNoSession", tok, err)
			}
			if err := m.PutTokens(ctx, n.Session.Hash, &session.Tokens{IDToken: idToken, AccessToken: "at-2", RefreshToken: "rt-2"}); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("PutTokens: %v; want ErrNoSession", err)
			}
		})
	}
}

// TestRetriedSignOutStaysKnown: a sign-out of a session this instance knew
// (cached) is kept while the store is away, and the Manager forgets the
// session. The gateway's RevokeLater of the same cookie then retries it,
// knowing nothing of the session any more: it is still the sign-out of a
// known session, which no other takes the place of once every place is
// taken, and the session ends once the store is back.
func TestRetriedSignOutStaysKnown(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	away := &awayStore{Store: db}
	m := session.New(away, session.Config{MaxPerUser: -1}, nil, nil)
	u := addUser(t, db, activeUser())
	sessions := make([]*session.NewSession, unrecordedPlaces+1)
	if err := db.Update(ctx, func(tx store.Tx) error {
		for i := range sessions {
			n, err := m.Prepare("okta", store.LogoutInfo{}, nil)
			if err != nil {
				return err
			}
			if err := n.Write(tx, u); err != nil {
				return err
			}
			sessions[i] = n
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range sessions {
		m.Remember(n)
	}
	target, rest := sessions[0], sessions[1:]
	away.away.Store(true)
	if _, err := m.SignOut(ctx, target.Token); err == nil {
		t.Fatal("SignOut with the store away: no error")
	}
	m.RevokeLater(target.Token, store.EventSessionLoggedOut) // the gateway's retry
	for _, n := range rest {                                 // every place taken, the last one's sign-out too many
		_, _ = m.SignOut(ctx, n.Token)
	}
	away.away.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	fresh := session.New(db, session.Config{MaxPerUser: -1}, nil, nil)
	if _, err := fresh.Resolve(ctx, target.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("the session signed out first, once the store is back: %v; want ErrNoSession", err)
	}
}

// TestRefreshFindingTheSessionSignedOutForgetsIt: instance b has the
// session cached (a long CacheTTL) and refreshes its tokens; a's sign-out
// commits while the IdP answers, and its notice does not reach b. b's
// refresh finds the session ended in the store: b drops its cached copy
// too, so that the cookie's next request there is refused, not admitted
// until the CacheTTL runs out.
func TestRefreshFindingTheSessionSignedOutForgetsIt(t *testing.T) {
	w := newTokenWorld(t, nil)
	h := newHub() // no instance listens: notices reach no one
	a := w.instance(1, h, 0)
	b := session.New(&broadcastStore{Store: w.db, hub: h, self: 2}, session.Config{CacheTTL: time.Hour}, nil, w.clk.now)
	idB := w.resolve(t, b)
	w.idp.before = func() {
		if e, err := a.SignOut(w.ctx, w.token); err != nil || e == nil || e.Before {
			t.Errorf("SignOut on a = %+v, %v", e, err)
		}
	}
	w.clk.advance(55 * time.Second) // the access token is due
	if u, err := b.UpstreamTokens(w.ctx, idB, 10*time.Second, w.idp.refresh); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("b's tokens after the sign-out on a = %v, %v; want ErrNoSession", u, err)
	}
	if _, err := b.Resolve(w.ctx, w.token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("b's next request with the signed-out cookie: %v, want ErrNoSession", err)
	}
}

// TestSignOutsPastTheLifetimeFreeTheirPlaces: sign-outs the store could not
// record for longer than the session lifetime are dropped once it is back
// (their sessions have expired anyway), and give back their places: in a
// later outage, the sign-out of a session another instance served (not
// known here, so not kept once every place is taken) is kept again, and
// recorded when the store returns.
func TestSignOutsPastTheLifetimeFreeTheirPlaces(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	away := &awayStore{Store: db}
	c := newClock()
	m := session.New(away, session.Config{}, nil, c.now)
	away.away.Store(true)
	for i := range unrecordedPlaces {
		_, _ = m.SignOut(ctx, fmt.Sprintf("M%042d", i)) // well-formed, made up
	}
	c.advance(session.DefaultLifetime + time.Minute)
	away.away.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	n := signIn(t, session.New(db, session.Config{}, nil, c.now), db, addUser(t, db, activeUser()), nil)
	signOutWhileAway(t, m, away, n.Token)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	signedOutEverywhere(t, m, db, n.Token, "a session signed out in the second outage")
}

// TestLateSignOutALifetimeOldIsDropped: a sign-out the store could not
// record for as long as the session lifetime is not recorded when the store
// comes back (any session it named has expired by then: the sweep removes
// it), to the nanosecond: no session.logged_out event a lifetime late.
func TestLateSignOutALifetimeOldIsDropped(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	away := &awayStore{Store: db}
	c := newClock()
	m := session.New(away, session.Config{}, nil, c.now)
	n := signIn(t, m, db, addUser(t, db, activeUser()), nil)
	c.advance(time.Hour)
	away.away.Store(true)
	if _, err := m.SignOut(ctx, n.Token); err == nil {
		t.Fatal("SignOut with the store away: no error")
	}
	c.advance(session.DefaultLifetime)
	away.away.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := loggedOutEvents(t, db); got != 0 {
		t.Errorf("%d session.logged_out events for a sign-out a lifetime old, want 0", got)
	}
}

// signOutWhileAway signs token out on m while away refuses the store (the
// sign-out is kept for a later Flush), and brings the store back.
func signOutWhileAway(t *testing.T, m *session.Manager, away *awayStore, token string) {
	t.Helper()
	away.away.Store(true)
	if _, err := m.SignOut(context.Background(), token); err == nil {
		t.Fatal("SignOut with the store away: no error")
	}
	away.away.Store(false)
}
