package session_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// loggedOutEvents counts the session.logged_out events in db.
func loggedOutEvents(t *testing.T, db store.Store) int {
	t.Helper()
	var n int
	if err := db.View(context.Background(), func(tx store.Tx) error {
		evs, err := tx.AuditEvents(store.AuditQuery{Type: store.EventSessionLoggedOut, Limit: 100})
		n = len(evs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSignOutOfEndedSessionKeepsIdPLogout: a sign-out of a session that
// has ended (idle past the timeout, past its lifetime) but is still stored
// returns what the IdP's logout needs all the same (the NameID, the ID
// token), so that the IdP's session ends too; it is not audited as logged
// out: it had ended. A live session's sign-out is audited. Either way the
// session stays stored, ended, until the sweep: a second click's sign-out,
// here or on another instance sharing the store (its answer is the one the
// browser shows), finds it ended and gets the IdP's logout again, with no
// second event and no write. A session signed out while the store was
// away gives nothing.
func TestSignOutOfEndedSessionKeepsIdPLogout(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		after  time.Duration
		before bool
	}{
		{"live", 10 * time.Minute, false},
		{"idle", 2 * time.Hour, true}, // idle_timeout 1h by default
		{"past its lifetime", session.DefaultLifetime, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			c := newClock()
			m := session.New(db, session.Config{}, nil, c.now)
			u := addUser(t, db, activeUser())
			n := signIn(t, m, db, u, &session.Tokens{IDToken: idToken})
			if _, err := m.Resolve(ctx, n.Token); err != nil {
				t.Fatal(err)
			}
			c.advance(tt.after)
			if tt.after < time.Hour {
				if _, err := m.Resolve(ctx, n.Token); err != nil { // in use, and cached
					t.Fatal(err)
				}
			}
			e, err := m.SignOut(ctx, n.Token)
			if err != nil {
				t.Fatal(err)
			}
			if e == nil || e.Session.Logout.Subject != "ada" || e.IDToken() != idToken || e.Before != tt.before {
				t.Fatalf("SignOut = %+v, want the session's logout subject, its ID token, Before %v", e, tt.before)
			}
			if want := map[bool]int{true: 0, false: 1}[tt.before]; loggedOutEvents(t, db) != want {
				t.Errorf("%d session.logged_out events, want %d", loggedOutEvents(t, db), want)
			}
			if _, err := m.Resolve(ctx, n.Token); err == nil {
				t.Error("the session resolves after its sign-out")
			}
			other := &updateCounter{Store: db}
			for _, again := range []*session.Manager{m, session.New(other, session.Config{}, nil, c.now)} {
				e, err := again.SignOut(ctx, n.Token)
				if err != nil || e == nil || !e.Before || e.IDToken() != idToken || e.Session.Logout.Subject != "ada" {
					t.Errorf("a second SignOut = %+v, %v; want the IdP's logout again, Before", e, err)
				}
			}
			if n := other.updates.Load(); n != 0 {
				t.Errorf("a second click's sign-out wrote %d times, want a read only", n)
			}
			if want := map[bool]int{true: 0, false: 1}[tt.before]; loggedOutEvents(t, db) != want {
				t.Errorf("%d session.logged_out events after the second click, want %d", loggedOutEvents(t, db), want)
			}
			c.advance(session.SweepGrace + time.Second)
			if _, err := m.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if e, err := m.SignOut(ctx, n.Token); e != nil || err != nil {
				t.Errorf("SignOut after the sweep = %+v, %v; want nothing (deleted)", e, err)
			}
		})
	}

	// Signed out already while the store could not record it: a second
	// click (the answer the browser shows) still goes on to the IdP's
	// logout once the store can be read, with no write; with the store
	// still away, it gets nothing (as for a deleted session).
	for _, away := range []bool{false, true} {
		t.Run(fmt.Sprintf("signed out while the store was away, away still %v", away), func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			st := &awayStore{Store: db}
			m := session.New(st, session.Config{}, nil, nil)
			n := signIn(t, m, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
			m.RevokeLater(n.Token, store.EventSessionLoggedOut)
			st.away.Store(away)
			e, err := m.SignOut(ctx, n.Token)
			switch {
			case err != nil:
				t.Errorf("SignOut of a session signed out already: %v", err)
			case away && e != nil:
				t.Errorf("SignOut of a session signed out already, the store away = %+v; want nothing", e)
			case !away && (e == nil || !e.Before || e.IDToken() != idToken || e.Session.Logout.Subject != "ada"):
				t.Errorf("SignOut of a session signed out already = %+v; want Before, with what the IdP's logout needs", e)
			}
			if loggedOutEvents(t, db) != 0 {
				t.Error("a second click audited the sign-out the store could not record; Flush does that")
			}
		})
	}
}

// updateCounter is a store that counts its write transactions.
type updateCounter struct {
	store.Store
	updates atomic.Int64
}

func (s *updateCounter) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

// TestSignOutOfUnknownTokenTakesNoWrite: anyone may POST a sign-out, with
// up to MaxSessionCookies made-up cookies; one that names no stored
// session costs a read, not a write transaction (the store's write lock, a
// bbolt commit and its syncs), which sign-ins would queue behind.
func TestSignOutOfUnknownTokenTakesNoWrite(t *testing.T) {
	ctx := context.Background()
	db := &updateCounter{Store: backendtest.OpenBolt(t)}
	m := session.New(db, session.Config{}, nil, nil)
	for i := range 4 {
		e, err := m.SignOut(ctx, strings.Repeat("x", 40)+string(rune('a'+i)))
		if e != nil || err != nil {
			t.Fatalf("SignOut = %+v, %v", e, err)
		}
	}
	if n := db.updates.Load(); n != 0 {
		t.Errorf("4 sign-outs of tokens naming no session took %d write transactions; want 0", n)
	}
}

// TestSignOutKeepsOnlyTheLogoutToken: a signed-out session stays stored
// until the sweep for a second click's IdP logout, which needs its ID
// token (id_token_hint) and nothing else: the access and refresh tokens go
// at the sign-out, as when the session was deleted at once, and a second
// click's answer still carries the ID token.
func TestSignOutKeepsOnlyTheLogoutToken(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	n := signIn(t, m, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken, AccessToken: "at-1", RefreshToken: "rt-1", Expiry: time.Now().Add(time.Hour)})
	if _, err := m.SignOut(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	var kept *session.Tokens
	if err := db.View(ctx, func(tx store.Tx) error {
		var err error
		kept, err = session.StoredTokens(tx, n.Session.Hash)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if kept == nil || kept.IDToken != idToken || kept.AccessToken != "" || kept.RefreshToken != "" {
		t.Errorf("stored after the sign-out: %v; want the ID token alone", kept)
	}
	if e, err := m.SignOut(ctx, n.Token); err != nil || e == nil || e.IDToken() != idToken {
		t.Errorf("second click: %+v, %v; want the ID token for the IdP's logout", e, err)
	}
}

// TestSecondClickForgetsItsOwnCache: B has the session cached, A signs it
// out, and A's notice does not reach B (shared's broadcasts reach no
// one). The second click's POST reaches B, which finds the session ended
// in the store: it answers with the IdP's logout and drops its own cached
// copy, so that the cookie is refused on B at once, not after CacheTTL.
func TestSecondClickForgetsItsOwnCache(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := newClock()
	a := session.New(shared(db), session.Config{}, nil, c.now)
	b := session.New(shared(db), session.Config{}, nil, c.now)
	n := signIn(t, a, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
	if _, err := b.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	if e, err := a.SignOut(ctx, n.Token); err != nil || e == nil {
		t.Fatalf("SignOut on A = %+v, %v", e, err)
	}
	c.advance(time.Second)
	if e, err := b.SignOut(ctx, n.Token); err != nil || e == nil || !e.Before {
		t.Fatalf("second click on B = %+v, %v; want the ended session", e, err)
	}
	if _, err := b.Resolve(ctx, n.Token); err == nil {
		t.Error("B admits the session after answering its sign-out")
	}
}

// TestSignOutSeenAtOnceByALaggingInstance: instances judge a session's end
// by their own clocks. Instance b's runs half a second behind a's: the
// session a signed out is refused on b at once (not half a second later),
// a double click's second POST on b goes on to the IdP's logout without a
// second write or audit event (it was audited twice), and a sweep within a
// minute of the sign-out, on either instance, keeps it for that click.
func TestSignOutSeenAtOnceByALaggingInstance(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	ca := newClock()
	a := session.New(db, session.Config{}, nil, ca.now)
	bStore := &updateCounter{Store: db}
	b := session.New(bStore, session.Config{}, nil, func() time.Time { return ca.now().Add(-500 * time.Millisecond) })
	n := signIn(t, a, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
	if _, err := b.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	if e, err := a.SignOut(ctx, n.Token); err != nil || e == nil || e.Before {
		t.Fatalf("first click on a = %+v, %v", e, err)
	}
	b.ForgetSession(n.Session.Hash) // as the sign-out's notice does over a shared store
	if _, err := b.Resolve(ctx, n.Token); err == nil {
		t.Error("b admits the signed-out session while its clock has not reached a's sign-out")
	}
	ca.advance(59 * time.Second)
	for _, m := range []*session.Manager{a, b} {
		if _, err := m.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	writes := bStore.updates.Load()
	e, err := b.SignOut(ctx, n.Token)
	if err != nil || e == nil || !e.Before || e.IDToken() != idToken {
		t.Fatalf("second click on b = %+v, %v; want the IdP's logout again, Before", e, err)
	}
	if n := bStore.updates.Load() - writes; n != 0 {
		t.Errorf("the second click on b wrote %d times, want a read only", n)
	}
	if got := loggedOutEvents(t, db); got != 1 {
		t.Errorf("%d session.logged_out events after a double click over a and b, want 1", got)
	}
}

// TestSignOutOutlivesItsRequest: a sign-out whose request has gone (a
// double click makes the browser drop the first POST, and a balancer then
// cancels it) still ends the session, audited, and answers what the IdP's
// logout needs: its reads and write do not run on the request's context.
// Both ways in, by cookie and by store key (an outer sso's session).
func TestSignOutOutlivesItsRequest(t *testing.T) {
	for _, byHash := range []bool{false, true} {
		t.Run(fmt.Sprintf("by hash %v", byHash), func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			m := session.New(db, session.Config{}, nil, nil)
			n := signIn(t, m, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
			id, err := m.Resolve(context.Background(), n.Token)
			if err != nil {
				t.Fatal(err)
			}
			gone, cancel := context.WithCancel(context.Background())
			cancel()
			var e *session.Ended
			if byHash {
				e, err = m.SignOutHash(gone, id.SessionHash)
			} else {
				e, err = m.SignOut(gone, n.Token)
			}
			if err != nil || e == nil || e.Before || e.IDToken() != idToken {
				t.Fatalf("SignOut of a request gone = %+v, %v; want the session ended by it, with its ID token", e, err)
			}
			if k := loggedOutEvents(t, db); k != 1 {
				t.Errorf("session.logged_out events: %d, want 1", k)
			}
			if _, err := m.Resolve(context.Background(), n.Token); err == nil {
				t.Error("the session resolves after its sign-out")
			}
		})
	}
}
