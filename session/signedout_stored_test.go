package session_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// A signed-out session stays stored, ended, until the sweep (so that a
// double click's second POST finds it on any instance): these tests pin
// that nothing takes such a row for a live session.

// TestTokensOfSessionSignedOutElsewhere: instance B admitted a request
// just before A signed its session out, and the request needs the access
// token refreshed. The signed-out session's refresh token is not
// presented to the IdP, nor are renewed tokens stored into the ended row
// or passed upstream: B's flight finds no session, as it did when a
// sign-out deleted the row. A refresh that was already at the IdP when
// the sign-out committed stores nothing either.
func TestTokensOfSessionSignedOutElsewhere(t *testing.T) {
	for _, tt := range []struct {
		name   string
		during bool // the sign-out commits while the IdP answers
		asked  int32
	}{
		{"signed out before the refresh", false, 0},
		{"signed out during the refresh", true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			a, b, _, idB := w.resolvedOnTwo(t, newHub())
			signOut := func() {
				if e, err := a.SignOut(w.ctx, w.token); err != nil || e == nil || e.Before {
					t.Errorf("SignOut on A = %+v, %v", e, err)
				}
			}
			if tt.during {
				w.idp.before = signOut
			} else {
				signOut()
			}
			w.clk.advance(55 * time.Second) // the access token is due
			u, err := b.UpstreamTokens(w.ctx, idB, 10*time.Second, w.idp.refresh)
			if !errors.Is(err, session.ErrNoSession) {
				t.Errorf("B's tokens after the sign-out on A = %v, %v; want ErrNoSession", u, err)
			}
			if n := w.idp.calls.Load(); n != tt.asked {
				t.Errorf("the IdP was asked %d times to refresh, want %d", n, tt.asked)
			}
			if tok, err := w.m.Tokens(w.ctx, w.hash); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("Tokens of the signed-out session = %+v, %v; want ErrNoSession", tok, err)
			}
			if blob := storedBlob(t, w.db, w.hash); blob == nil {
				t.Error("the signed-out row lost its sealed tokens before the sweep")
			}
			if got := revokedReasons(t, w.db); len(got) != 0 {
				t.Errorf("session.revoked %v after a sign-out", got)
			}
		})
	}
}

// storedBlob is the sealed tokens blob stored for the session hash.
func storedBlob(t *testing.T, db store.Store, hash string) []byte {
	t.Helper()
	var blob []byte
	if err := db.View(context.Background(), func(tx store.Tx) (err error) {
		blob, err = tx.SessionTokens(hash)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return blob
}

// TestEndOfSignedOutSessionAuditsNothing: End (the IdP refused to refresh
// the tokens for good) of a session signed out meanwhile deletes the
// ended row without a session.revoked event: its sign-out was audited.
// A live session's End is audited as before.
func TestEndOfSignedOutSessionAuditsNothing(t *testing.T) {
	for _, tt := range []struct {
		name      string
		signedOut bool
		want      int
	}{
		{"live", false, 1},
		{"signed out", true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newTokenWorld(t, nil)
			if tt.signedOut {
				if _, err := w.m.SignOut(w.ctx, w.token); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.m.End(w.ctx, w.hash, store.EventSessionRevoked, session.ReasonGrantRevoked); err != nil {
				t.Fatal(err)
			}
			if got := revokedReasons(t, w.db); len(got) != tt.want {
				t.Errorf("session.revoked %v, want %d event(s)", got, tt.want)
			}
			if err := w.db.View(w.ctx, func(tx store.Tx) error {
				_, err := tx.Session(w.hash)
				return err
			}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the session is still stored after End: %v", err)
			}
		})
	}
}

// lostCommitStore commits the next Update once armed and then reports
// its outcome unknown, as PostgreSQL does when the connection breaks
// after COMMIT was sent.
type lostCommitStore struct {
	store.Store
	armed atomic.Bool
}

func (l *lostCommitStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := l.Store.Update(ctx, fn)
	if err == nil && l.armed.CompareAndSwap(true, false) {
		return store.ErrOutcomeUnknown
	}
	return err
}

// TestSignOutCommittedOutcomeUnknownAuditedOnce: the sign-out's write
// committed (the row ended in place, audited) but the store reported its
// outcome unknown, so the sign-out was kept to be recorded later. The
// late record deletes the ended row without a second session.logged_out.
func TestSignOutCommittedOutcomeUnknownAuditedOnce(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := newClock()
	ls := &lostCommitStore{Store: db}
	m := session.New(ls, session.Config{}, nil, c.now)
	n := signIn(t, m, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
	if _, err := m.Resolve(ctx, n.Token); err != nil {
		t.Fatal(err)
	}
	ls.armed.Store(true)
	if _, err := m.SignOut(ctx, n.Token); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("SignOut = %v, want ErrOutcomeUnknown", err)
	}
	c.advance(time.Second)
	if err := m.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if k := loggedOutEvents(t, db); k != 1 {
		t.Errorf("%d session.logged_out events for one sign-out, want 1", k)
	}
	if _, err := m.Resolve(ctx, n.Token); err == nil {
		t.Error("the session resolves after its sign-out")
	}
}

// TestSweepSparesSignedOutSessionForDoubleClick: a sweep between the two
// POSTs of a double click (every Run starts with one) leaves the
// signed-out session stored, so that the second POST still gets the
// IdP's logout; a sweep a minute after the sign-out deletes it.
func TestSweepSparesSignedOutSessionForDoubleClick(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := newClock()
	m := session.New(shared(db), session.Config{}, nil, c.now)
	n := signIn(t, m, db, addUser(t, db, activeUser()), &session.Tokens{IDToken: idToken})
	if e, err := m.SignOut(ctx, n.Token); err != nil || e == nil || e.Before {
		t.Fatalf("first click = %+v, %v", e, err)
	}
	c.advance(time.Millisecond)
	if k, err := m.Sweep(ctx); err != nil || k != 0 {
		t.Fatalf("sweep between the clicks deleted %d, %v; want 0", k, err)
	}
	c.advance(100 * time.Millisecond)
	if e, err := m.SignOut(ctx, n.Token); err != nil || e == nil || !e.Before || e.IDToken() != idToken {
		t.Errorf("second click = %+v, %v; want the IdP's logout again", e, err)
	}
	c.advance(time.Minute)
	if k, err := m.Sweep(ctx); err != nil || k != 1 {
		t.Errorf("sweep a minute after the sign-out deleted %d, %v; want 1", k, err)
	}
}
