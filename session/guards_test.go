package session_test

// Tests of checks no other test of the package caught taking out (a
// mutation pass of the package): each fails when its check is removed or
// weakened as its comment says.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// sharingInstances is two Managers sharing db through a hub (as PostgreSQL's
// LISTEN/NOTIFY does), with a cache TTL of an hour: only a broadcast can
// make one notice the other's change in time.
func sharingInstances(t *testing.T) (db store.Store, a, b *session.Manager, h *hub) {
	t.Helper()
	db = backendtest.OpenBolt(t)
	h = &hub{listeners: map[int]func(store.Invalidation){}}
	cfg := session.Config{CacheTTL: time.Hour}
	a = session.New(&broadcastStore{db, h, 1}, cfg, nil, nil)
	b = session.New(&broadcastStore{db, h, 2}, cfg, nil, nil)
	runInstances(t, h, a, b)
	return db, a, b, h
}

// TestForgetSessionReachesOtherInstances: a session an administrator
// deleted in the store and forgot on instance A (ForgetSession, as
// account does) is refused on instance B at once, not after B's cache TTL.
// Taking the check out (ForgetSessions without its broadcast) leaves B serving it.
func TestForgetSessionReachesOtherInstances(t *testing.T) {
	ctx := context.Background()
	db, a, b, _ := sharingInstances(t)
	u := addUser(t, db, activeUser())
	token, s, err := a.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.DeleteSession(s.Hash) }); err != nil {
		t.Fatal(err)
	}
	a.ForgetSession(s.Hash)
	if _, err := b.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("instance B still serves a session deleted and forgotten on A: %v", err)
	}
}

// TestEndingForgetsASessionGoneFromTheStore: End (a refresh the IdP
// refused as revoked) and a sign-out (Revoke) of a session another
// instance deleted already (its broadcast lost) drop it from this
// instance's cache all the same, so a copy of the cookie stops working
// here at once. Taking either first forget out (End's; revokeHash's, which
// would then forget only what it found in the store) leaves it served from
// the cache until CacheTTL.
func TestEndingForgetsASessionGoneFromTheStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(ctx context.Context, m *session.Manager, token, hash string) error
	}{
		{"End", func(ctx context.Context, m *session.Manager, _, hash string) error {
			return m.End(ctx, hash, store.EventSessionRevoked, session.ReasonGrantRevoked)
		}},
		{"Revoke", func(ctx context.Context, m *session.Manager, token, _ string) error {
			_, err := m.Revoke(ctx, token, store.EventSessionLoggedOut)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, clk := backendtest.OpenBolt(t), newClock()
			m := session.New(db, session.Config{}, nil, clk.now)
			token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Resolve(ctx, token); err != nil {
				t.Fatal(err)
			}
			if err := db.Update(ctx, func(tx store.Tx) error { return tx.DeleteSession(s.Hash) }); err != nil {
				t.Fatal(err)
			}
			if err := tc.end(ctx, m, token, s.Hash); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("a session %s ended is still served from the cache: %v", tc.name, err)
			}
		})
	}
}

// TestEndsCountsAnUnrecordedSignOut: a session signed out while the store
// could not record it is refused here (Revoke), so Ends (the admin API's
// list and count of a user's sessions) reports it ended too, as its doc
// says. Taking the check out (Ends ignoring Manager.unrecorded) reports it live.
func TestEndsCountsAnUnrecordedSignOut(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	full := new(atomic.Bool)
	m := session.New(writesFail{db, full}, session.Config{}, nil, nil)
	token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if _, err := m.Revoke(ctx, token, store.EventSessionLoggedOut); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Revoke on a full disk: %v", err)
	}
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("the signed-out session: %v, want ErrNoSession", err)
	}
	if _, ended := m.Ends(storedSession(t, db, s.Hash)); !ended {
		t.Error("Ends reports a session live that requests here refuse (signed out, not yet recorded)")
	}
}

// TestCachedSessionEndsAtItsLifetime: a session cached a moment before
// its lifetime ends is refused once the lifetime is over, though its
// cached copy is younger than CacheTTL. Taking the check out (the cache's check
// of the lifetime dropped) serves it up to CacheTTL past its end.
func TestCachedSessionEndsAtItsLifetime(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	m := session.New(db, session.Config{Lifetime: time.Hour, IdleTimeout: -1, CacheTTL: 30 * time.Second}, nil, clk.now)
	token, _, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour - 10*time.Second)
	if _, err := m.Resolve(ctx, token); err != nil { // read again: cached anew
		t.Fatal(err)
	}
	clk.advance(15 * time.Second) // 5 s past the lifetime, the copy 15 s old
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("5 s past the session's lifetime: %v, want ErrNoSession", err)
	}
}

// TestCreateRefusesPendingUser: no session is written for a user who
// awaits approval (Write re-reads the user). Taking the check out (Write's check of
// Pending dropped) signs the user in.
func TestCreateRefusesPendingUser(t *testing.T) {
	ctx, db := context.Background(), backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	approved := *u
	pending := *u
	pending.Pending = true
	addUser(t, db, &pending) // set back to pending after the sign-in was approved
	if _, _, err := m.Create(ctx, &approved, "okta", store.LogoutInfo{}); !errors.Is(err, session.ErrUserInactive) {
		t.Fatalf("Create for a pending user: %v, want ErrUserInactive", err)
	}
}

// TestPendingUserLosesSessionOnReload: a user set to pending (by another
// process) loses the session when the cache reads the store again, as a
// deactivated one does. Taking the check out (load's check of Pending dropped)
// keeps serving it.
func TestPendingUserLosesSessionOnReload(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	m := session.New(db, session.Config{CacheTTL: time.Second}, nil, clk.now)
	u := addUser(t, db, activeUser())
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	u.Pending = true
	addUser(t, db, u)
	clk.advance(2 * time.Second)
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("a pending user's session after the cache TTL: %v, want ErrNoSession", err)
	}
}

// TestCapEndsCachedSessionAtOnce: a sign-in past MaxPerUser ends the
// oldest session, and a copy of its cookie is refused at once by the
// instance that cached it, not after CacheTTL. Taking the check out (Remember
// without the forget of what Write ended) serves it from the cache.
func TestCapEndsCachedSessionAtOnce(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	m := session.New(db, session.Config{MaxPerUser: 1}, nil, clk.now)
	u := addUser(t, db, activeUser())
	old := signIn(t, m, db, u, nil)
	if _, err := m.Resolve(ctx, old.Token); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	n := signIn(t, m, db, u, nil)
	if len(n.Ended) != 1 {
		t.Fatalf("ended %v, want the older session", n.Ended)
	}
	if _, err := m.Resolve(ctx, old.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("the session the cap ended: %v, want ErrNoSession", err)
	}
}

// TestCapNeverEndsTheNewSession: with the clock set back between two
// sign-ins (the new session Created before the old one), the cap still
// ends the old session, never the one being created. Repeated over fresh
// users so that both orders of the store's index occur. Taking the check out (the
// sort's "new session last" case for a == new dropped) ends the new one
// when the store lists it second.
func TestCapNeverEndsTheNewSession(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	m := session.New(db, session.Config{MaxPerUser: 1}, nil, clk.now)
	for i := range 16 {
		u := addUser(t, db, &store.User{Email: "u" + string(rune('a'+i)) + "@example.com", Active: true})
		old := signIn(t, m, db, u, nil)
		clk.advance(-time.Hour)
		n := signIn(t, m, db, u, nil)
		clk.advance(time.Hour)
		if _, err := m.Resolve(ctx, n.Token); err != nil {
			t.Fatalf("user %d: the new session: %v (ended %v, old %s)", i, err, n.Ended, old.Session.Hash)
		}
		if _, err := m.Resolve(ctx, old.Token); !errors.Is(err, session.ErrNoSession) {
			t.Fatalf("user %d: the old session: %v, want ErrNoSession", i, err)
		}
	}
}

// TestIdleInCacheAfterARestart: over bbolt, a session signed in before a
// restart and used after it is idle from that use, exactly, while its
// cached copy decides (under CacheTTL): the uses a crash may have lost
// came before the restart, hence before this use. Taking the check out (a cached
// entry idle by its own uses re-read on bbolt too) sends it to load,
// which allows the stored time's two-minute lag, and serves it.
func TestIdleInCacheAfterARestart(t *testing.T) {
	ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
	cfg := session.Config{IdleTimeout: 10 * time.Second}
	token, _, err := session.New(db, cfg, nil, clk.now).Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	m := session.New(db, cfg, nil, clk.now) // the restart
	clk.advance(time.Second)
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	clk.advance(10 * time.Second) // idle_timeout after the use, the copy 10 s old
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("idle for idle_timeout since its last use: %v, want ErrNoSession", err)
	}
}

// TestSignOutOfInactiveUsersSession: the sign-out of a session whose user
// was deactivated since (no request could use it: load ends it) is
// Ended.Before, and is not audited as a sign-out, as the doc of SignOut
// and endedBefore say. Taking the check out (endedBefore ignoring the user)
// audits session.logged_out for it and says Before false.
func TestSignOutOfInactiveUsersSession(t *testing.T) {
	ctx, db := context.Background(), backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	u.Active = false
	addUser(t, db, u)
	ended, err := m.SignOut(ctx, token)
	if err != nil || ended == nil {
		t.Fatalf("SignOut: %v, %v", ended, err)
	}
	if !ended.Before {
		t.Error("Ended.Before false for a session whose user is inactive")
	}
	if n := auditTypes(t, db)[store.EventSessionLoggedOut]; n != 0 {
		t.Errorf("%d session.logged_out events for a session no request could use, want 0", n)
	}
}

// TestRevokedGrantEndsAtOnceOverAnUnsharedStore: over a store no other
// instance shares (bbolt) no other instance can have rotated the refresh
// token, so a refusal as revoked ends the session at once, as
// Config.RefreshRaceWindow's doc says, without the request waiting out the
// window. Taking the check out (refreshRaceWindow ignoring m.bc) makes the
// request wait the whole window first.
func TestRevokedGrantEndsAtOnceOverAnUnsharedStore(t *testing.T) {
	w := newTokenWorld(t, nil)
	w.m = session.New(w.db, session.Config{RefreshRaceWindow: 3 * time.Second}, nil, w.clk.now)
	w.idp.failWith(fmt.Errorf("token endpoint: invalid_grant: %w", idp.ErrGrantRevoked))
	w.clk.advance(55 * time.Second)
	start := time.Now()
	if _, err := w.access(t, w.m, 10*time.Second); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("revoked grant: %v, want ErrNoSession", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %v to end the session over bbolt, want at once", took)
	}
}

// TestEndReachesOtherInstances: a session End ends on instance A (its
// grant revoked at the IdP) is refused on instance B at once, not after
// B's CacheTTL. Taking the check out (End without its broadcast) leaves B serving
// it.
func TestEndReachesOtherInstances(t *testing.T) {
	ctx := context.Background()
	db, a, b, _ := sharingInstances(t)
	token, s, err := a.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := a.End(ctx, s.Hash, store.EventSessionRevoked, session.ReasonGrantRevoked); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("instance B still serves a session ended on A: %v", err)
	}
}

// TestRefreshForgetsASessionEndedElsewhere: a token refresh that finds
// the session gone from the store (another instance ended it, its
// broadcast lost), before it asks the IdP or after the IdP refused, drops
// it from this instance's cache, so the routes without tokens refuse it
// too at the next request, not after CacheTTL. Taking either forget out
// (renew's, refreshFailed's) serves it from the cache.
func TestRefreshForgetsASessionEndedElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool // ended before the refresh reads the tokens, or during the refresh
	}{
		{"ended before the refresh", true},
		{"ended while the IdP answered", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			if _, err := w.access(t, w.m, 0); err != nil {
				t.Fatal(err)
			}
			end := func() {
				if err := w.db.Update(w.ctx, func(tx store.Tx) error { return tx.DeleteSession(w.hash) }); err != nil {
					t.Error(err)
				}
			}
			if tc.before {
				end()
			} else {
				w.idp.before = end
			}
			w.idp.failWith(errors.New("token endpoint unreachable"))
			// A margin past the access token's expiry asks for a refresh
			// at once, while the cached copy is fresh.
			if _, err := w.access(t, w.m, 2*time.Minute); !errors.Is(err, session.ErrNoSession) {
				t.Fatalf("refresh of a session ended elsewhere: %v, want ErrNoSession", err)
			}
			if _, err := w.m.Resolve(w.ctx, w.token); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("after a refresh found it ended elsewhere, the session is still served from the cache: %v", err)
			}
		})
	}
}

// TestSessionFoundWithInactiveUserIsDeleted: a request that finds the
// session's user deactivated (by another process, so the cache held it)
// deletes the session from the store, not only from the cache: reactivating
// the user later does not bring back a session signed in before the
// deactivation.
func TestSessionFoundWithInactiveUserIsDeleted(t *testing.T) {
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
			clk := newClock()
			m := session.New(db, session.Config{CacheTTL: time.Second}, nil, clk.now)
			u := addUser(t, db, activeUser())
			token, s, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			off := *u
			tt.change(&off)
			addUser(t, db, &off)
			clk.advance(2 * time.Second) // past the cache TTL
			if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
				t.Fatalf("session of a user who may not sign in: %v, want ErrNoSession", err)
			}
			if err := db.View(ctx, func(tx store.Tx) error { _, err := tx.Session(s.Hash); return err }); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the session after a request found its user inactive: %v, want deleted", err)
			}
			addUser(t, db, u) // active again
			for _, m := range []*session.Manager{m, session.New(db, session.Config{}, nil, clk.now)} {
				if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
					t.Errorf("the session after its user was reactivated: %v, want ErrNoSession", err)
				}
			}
		})
	}
}

// TestCreateRefusesASessionTheStoreRefuses: a sign-in whose session the
// store cannot hold (an IdP session index longer than the store indexes)
// fails, rather than handing the browser a cookie that names no session.
func TestCreateRefusesASessionTheStoreRefuses(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	long := strings.Repeat("s", store.MaxKeyBytes+1)
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{Subject: "ada", SessionID: long})
	if !errors.Is(err, store.ErrValueTooLong) {
		t.Errorf("Create with a %d-byte IdP session index: token %q, %v; want ErrValueTooLong", len(long), token, err)
	}
	if err := db.View(ctx, func(tx store.Tx) error {
		n, err := tx.UserSessions(u.ID)
		if len(n) != 0 {
			t.Errorf("%d sessions stored, want none", len(n))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
