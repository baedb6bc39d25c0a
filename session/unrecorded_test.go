package session_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// awayStore fails every transaction while away is set: a database that
// does not answer (docs/cluster.md, "Failover").
type awayStore struct {
	store.Store
	away atomic.Bool
}

func (s *awayStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.away.Load() {
		return syscall.ECONNREFUSED
	}
	return s.Store.View(ctx, fn)
}

func (s *awayStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.away.Load() {
		return syscall.ECONNREFUSED
	}
	return s.Store.Update(ctx, fn)
}

// unrecordedPlaces is the number of sign-outs a Manager keeps while the
// store cannot record them (maxUnrecordedRevocations).
const unrecordedPlaces = 10_000

// signedOutEverywhere checks that the session of token is refused by m and
// by a Manager that never saw it (once m's Flush recorded the sign-out).
func signedOutEverywhere(t *testing.T, m *session.Manager, db store.Store, token, what string) {
	t.Helper()
	ctx := context.Background()
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("%s, on the instance that signed it out: %v; want ErrNoSession", what, err)
	}
	fresh := session.New(db, session.Config{}, nil, nil)
	if _, err := fresh.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("%s, on another instance once the store is back: %v; want ErrNoSession", what, err)
	}
}

// errorLines returns the messages logged at ERROR.
func errorLines(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.FilterLevelExact(zapcore.ErrorLevel).All() {
		out = append(out, e.Message)
	}
	return out
}

// TestMadeUpSignOutCookiesTakeNoPlace: anyone can POST /.sso/logout with
// four made-up cookies a request. One that cannot be a session token (not
// 43 base64url characters) is no session to SignOut, Revoke or RevokeLater:
// no store read or write, and, while the store is away, none of the places
// of the sign-outs kept for later. So 10,000 of them do not crowd out the
// sign-out of a real session that this instance never served (one another
// instance signed in): it is refused here at once and recorded once the
// store is back.
func TestMadeUpSignOutCookiesTakeNoPlace(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	st := &awayStore{Store: db}
	c := &txCounter{Store: st}
	core, logs := observer.New(zap.ErrorLevel)
	m := session.New(c, session.Config{}, zap.New(core), nil)
	token, _, err := session.New(db, session.Config{}, nil, nil).Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}

	st.away.Store(true)
	var answered []error // what SignOut and Revoke said of them
	for i := range unrecordedPlaces / 4 {
		// Four a request, as the gateway tries them: too short, too
		// long, outside the alphabet.
		for _, junk := range []string{fmt.Sprint("junk", i), fmt.Sprintf("%042d=", i), fmt.Sprintf("%042d", i), fmt.Sprintf("%044d", i)} {
			e1, err1 := m.SignOut(ctx, junk)
			e2, err2 := m.Revoke(ctx, junk, store.EventSessionLoggedOut)
			if e1 != nil || e2 != nil || err1 != nil || err2 != nil {
				answered = append(answered, fmt.Errorf("%q: SignOut = %+v, %v; Revoke = %+v, %v", junk, e1, err1, e2, err2))
			}
			m.RevokeLater(junk, store.EventSessionLoggedOut)
		}
	}
	if len(answered) > 0 {
		t.Errorf("%d made-up cookies signed out with the store away gave something, first %v; want nothing (no session)", len(answered), answered[0])
	}
	if v, u := c.views.Load(), c.updates.Load(); v != 0 || u != 0 {
		t.Errorf("%d made-up cookies signed out: %d store reads and %d writes tried; want none", unrecordedPlaces, v, u)
	}
	if _, err := m.SignOut(ctx, token); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("SignOut of the real session with the store away: %v; want the store's error", err)
	}
	if lines := errorLines(logs); len(lines) != 0 {
		t.Errorf("ERROR lines: %q; want none (no sign-out was dropped)", lines)
	}

	st.away.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	signedOutEverywhere(t, m, db, token, "the session signed out after 10,000 made-up cookies")
	if n := loggedOutEvents(t, db); n != 1 {
		t.Errorf("%d session.logged_out events, want 1", n)
	}
}

// TestUnrecordedSignOutsKeepKnownSessions: random well-formed cookies
// cannot be told from real ones without the store, so they still fill the
// sign-outs kept while the store cannot record them. A sign-out of a
// session this instance knows is real (cached here, or read from the store
// when only writes fail) is never pushed out by them: once all places are
// taken, it takes the place of an unknown one, and one that is not known
// is not kept (the ERROR line of the cap, one a minute). Each way a
// sign-out reaches the list: SignOut with the store away, SignOutHash (an
// outer sso's session), and SignOut on a full disk.
func TestUnrecordedSignOutsKeepKnownSessions(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		// away: reads fail too (else only writes fail);
		// cached: the sessions are cached on the Manager that signs them out.
		away, cached bool
		signOut      func(m *session.Manager, n *session.NewSession) error
	}{
		{"store away, SignOut", true, true, func(m *session.Manager, n *session.NewSession) error {
			_, err := m.SignOut(ctx, n.Token)
			return err
		}},
		{"store away, SignOutHash", true, true, func(m *session.Manager, n *session.NewSession) error {
			_, err := m.SignOutHash(ctx, n.Session.Hash)
			return err
		}},
		{"full disk, SignOut of a session another instance served", false, false, func(m *session.Manager, n *session.NewSession) error {
			_, err := m.SignOut(ctx, n.Token)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			st := &awayStore{Store: db}
			full := new(atomic.Bool)
			clk := newClock()
			core, logs := observer.New(zap.ErrorLevel)
			m := session.New(writesFail{st, full}, session.Config{}, zap.New(core), clk.now)
			signer := m
			if !tt.cached {
				signer = session.New(db, session.Config{}, nil, clk.now)
			}
			u := addUser(t, db, activeUser())
			first, second := signIn(t, signer, db, u, nil), signIn(t, signer, db, u, nil)
			if !tt.cached {
				if m.Cached() != 0 {
					t.Fatal("the Manager signing out has the sessions cached")
				}
			}

			st.away.Store(tt.away)
			full.Store(true)
			madeUp := func(i int) string { return fmt.Sprintf("M%042d", i) } // well-formed
			fill := func(from, to int) {
				for i := from; i < to; i++ {
					if tt.away {
						_, _ = m.SignOut(ctx, madeUp(i))
					} else {
						// With reads working, SignOut finds no such
						// session; the gateway's RevokeLater of the
						// request's other cookies keeps them.
						m.RevokeLater(madeUp(i), store.EventSessionLoggedOut)
					}
				}
			}
			// A known sign-out while there is room, then unknown ones
			// past the places: the first is not pushed out.
			fill(0, unrecordedPlaces/2)
			if err := tt.signOut(m, first); err == nil {
				t.Fatal("the sign-out was recorded with the store unable to")
			}
			fill(unrecordedPlaces/2, unrecordedPlaces+100)
			if lines := errorLines(logs); len(lines) != 1 || !strings.Contains(lines[0], "this one is not kept") {
				t.Errorf("ERROR lines past the cap: %q; want the cap's line, once", lines)
			}
			// Every place is taken: a known one takes an unknown one's.
			clk.advance(time.Minute)
			if err := tt.signOut(m, second); err == nil {
				t.Fatal("the sign-out was recorded with the store unable to")
			}
			if lines := errorLines(logs); len(lines) != 2 || !strings.Contains(lines[1], "gave its place to this one") {
				t.Errorf("ERROR lines after a known sign-out with every place taken: %q; want one saying an unknown one gave its place", lines)
			}
			// The same cookie's sign-out again (the gateway's RevokeLater
			// after SignOut) is kept already: no line says it is not.
			clk.advance(time.Minute)
			m.RevokeLater(second.Token, store.EventSessionLoggedOut)
			if lines := errorLines(logs); len(lines) != 2 {
				t.Errorf("ERROR lines after signing out a kept session again: %q; want no new one", lines)
			}
			for _, n := range []*session.NewSession{first, second} {
				if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
					t.Errorf("a copy of a signed-out cookie while the store cannot record it: %v; want ErrNoSession", err)
				}
			}

			st.away.Store(false)
			full.Store(false)
			if err := m.Flush(ctx, false); err != nil {
				t.Fatal(err)
			}
			signedOutEverywhere(t, m, db, first.Token, "the session signed out before the places were taken")
			signedOutEverywhere(t, m, db, second.Token, "the session signed out once they were")
			if n := loggedOutEvents(t, db); n != 2 {
				t.Errorf("%d session.logged_out events, want 2", n)
			}
		})
	}
}

// TestUnrecordedSignOutsNeverPushOutKnownOnes: once every place of the
// sign-outs kept while the store cannot record them is taken by sessions
// known to be real, a further known sign-out takes none of their places
// (each stays refused), and is itself not kept: its cookie works again on
// this instance, as the cap's ERROR line says, rather than the list growing
// past maxUnrecordedRevocations.
func TestUnrecordedSignOutsNeverPushOutKnownOnes(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	full := new(atomic.Bool)
	core, logs := observer.New(zap.ErrorLevel)
	m := session.New(writesFail{db, full}, session.Config{MaxPerUser: -1}, zap.New(core), nil)
	u := addUser(t, db, activeUser())
	sessions := make([]*session.NewSession, unrecordedPlaces+1)
	for i := range sessions {
		n, err := m.Prepare("okta", store.LogoutInfo{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = n
	}
	err := db.Update(ctx, func(tx store.Tx) error { // one commit for them all
		for _, n := range sessions {
			if err := n.Write(tx, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sessions {
		m.Remember(n)
	}

	full.Store(true)
	for _, n := range sessions {
		if _, err := m.SignOut(ctx, n.Token); err == nil {
			t.Fatal("the sign-out was recorded with the store unable to")
		}
	}
	if lines := errorLines(logs); len(lines) != 1 || !strings.Contains(lines[0], "this one is not kept") {
		t.Errorf("ERROR lines: %q; want the cap's line for the last sign-out, once", lines)
	}
	works := 0
	for i, n := range sessions[:unrecordedPlaces] {
		if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
			works++
			if works == 1 {
				t.Errorf("the sign-out kept %d of %d pushed out by a later known one: its cookie resolves (%v)", i, unrecordedPlaces, err)
			}
		}
	}
	if works > 0 {
		t.Errorf("%d kept sign-outs of known sessions no longer refused", works)
	}
	if _, err := m.Resolve(ctx, sessions[unrecordedPlaces].Token); err != nil {
		t.Errorf("the sign-out past the places: %v; want not kept (its cookie works here again, as the ERROR line says)", err)
	}
}

// TestUnrecordedSignOutOfASessionTheCacheDropped: a session the cache made
// room by dropping, whose last use this instance still holds for the next
// Flush, is known to be real: with every place of the sign-outs kept while
// the store is away taken by made-up cookies, its sign-out takes the place
// of one of them, and is recorded once the store is back.
func TestUnrecordedSignOutOfASessionTheCacheDropped(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	st := &awayStore{Store: db}
	clk := newClock()
	m := session.New(st, session.Config{CacheSize: 1}, nil, clk.now)
	u := addUser(t, db, activeUser())
	var sessions []*session.NewSession
	for range 5 {
		sessions = append(sessions, signIn(t, m, db, u, nil))
	}
	clk.advance(2 * time.Second)
	for _, n := range sessions { // each use read again, the one before dropped
		if _, err := m.Resolve(ctx, n.Token); err != nil {
			t.Fatal(err)
		}
	}
	if m.Cached() != 1 {
		t.Fatalf("%d sessions cached, want 1 (CacheSize)", m.Cached())
	}

	st.away.Store(true)
	for i := range unrecordedPlaces {
		_, _ = m.SignOut(ctx, fmt.Sprintf("M%042d", i)) // well-formed, made up
	}
	for _, n := range sessions {
		if _, err := m.SignOut(ctx, n.Token); err == nil {
			t.Fatal("the sign-out was recorded with the store away")
		}
	}
	st.away.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i, n := range sessions {
		signedOutEverywhere(t, m, db, n.Token, fmt.Sprintf("session %d, signed out with every place taken", i))
	}
}

// TestUnrecordedSignOutOfASessionWithUnsavedTokens: a session whose
// renewed tokens this instance holds because the store did not take them
// is known to be real, even once the cache dropped it (its last use
// written): with every place of the sign-outs kept while the store is away
// taken by made-up cookies, its sign-out takes the place of one of them,
// and is recorded once the store is back.
func TestUnrecordedSignOutOfASessionWithUnsavedTokens(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	flaky := &flakyStore{Store: db}
	st := &awayStore{Store: flaky}
	clk := newClock()
	m := session.New(st, session.Config{CacheSize: 1, TouchInterval: time.Second}, nil, clk.now)
	idp := &fakeIdP{clk: clk, ttl: time.Minute}
	u := addUser(t, db, activeUser())
	a := signIn(t, m, db, u, &session.Tokens{IDToken: idToken, AccessToken: "at-1", RefreshToken: "rt-1", Expiry: clk.now().Add(time.Minute)})
	clk.advance(55 * time.Second)
	id, err := m.Resolve(ctx, a.Token)
	if err != nil {
		t.Fatal(err)
	}
	flaky.failing.Store(1) // storing the renewed tokens fails
	if got, err := m.UpstreamTokens(ctx, id, 10*time.Second, idp.refresh); err != nil || got.Access[0] == "at-1" {
		t.Fatalf("UpstreamTokens: %v, %v; want the renewed token", got, err)
	}
	clk.advance(2 * time.Second)
	if err := m.Flush(ctx, false); err != nil { // its last use written
		t.Fatal(err)
	}
	// Each sign-in drops one of two cached sessions at random: after
	// 30, a's entry is gone but for a chance of 2^-30.
	for range 30 {
		signIn(t, m, db, u, nil)
	}

	st.away.Store(true)
	for i := range unrecordedPlaces {
		_, _ = m.SignOut(ctx, fmt.Sprintf("M%042d", i)) // well-formed, made up
	}
	if _, err := m.SignOut(ctx, a.Token); err == nil {
		t.Fatal("the sign-out was recorded with the store away")
	}
	st.away.Store(false)
	if err := m.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	signedOutEverywhere(t, m, db, a.Token, "the session with unsaved tokens, signed out with every place taken")
}
