package session_test

import (
	"context"
	"errors"
	"fmt"
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

// lostCommitStore reports the next Update's outcome unknown once armed,
// as PostgreSQL does when the answer to COMMIT is lost: with lost unset
// the write commits (the COMMIT arrived), with it set it does not (the
// connection broke before). blind fails every transaction from then on
// until cleared (the database stays away), when blindAfter is set.
// meanwhile, if set, runs before the lost answer is reported (another
// instance at work while the COMMIT's answer was on its way).
type lostCommitStore struct {
	store.Store
	armed      atomic.Bool
	lost       bool
	blindAfter bool
	blind      atomic.Bool
	meanwhile  func()
}

func (l *lostCommitStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if l.blind.Load() {
		return syscall.ECONNREFUSED
	}
	if !l.armed.CompareAndSwap(true, false) {
		return l.Store.Update(ctx, fn)
	}
	if !l.lost {
		if err := l.Store.Update(ctx, fn); err != nil {
			return err
		}
	}
	if l.meanwhile != nil {
		l.meanwhile()
	}
	l.blind.Store(l.blindAfter)
	return fmt.Errorf("commit: %w", store.ErrOutcomeUnknown)
}

func (l *lostCommitStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if l.blind.Load() {
		return syscall.ECONNREFUSED
	}
	return l.Store.View(ctx, fn)
}

// TestSignOutOutcomeUnknown: the store reports a sign-out's write's
// outcome unknown (store.ErrOutcomeUnknown). Whatever became of it, the
// sign-out is audited once and logged "signed out" once, and a second
// click on the same instance still gets what the IdP's logout needs. The
// write runs again, and:
//   - committed: finds the session ended by it (its end), and answers it
//     as one confirmed at once (Ended.OutcomeUnknown), not audited again;
//     the gateway writes its line, and nothing is left for Flush;
//   - not committed: ends it now, an ordinary sign-out;
//   - committed, but the store fails again: the sign-out is kept for
//     Flush, which finds the end this sign-out wrote and logs it
//     (recorded_late, outcome_unknown) without auditing it again; also
//     when the gateway then keeps it again (signOutUnrecorded's
//     RevokeLater, a retry that knows no end);
//   - not committed, and another instance signed the session out
//     meanwhile (another end): found ended before, as by that instance,
//     which audited and logged it; not answered as this one's, and, if
//     the store fails again, not logged by Flush as this one's either.
func TestSignOutOutcomeUnknown(t *testing.T) {
	for _, tt := range []struct {
		name             string
		lost, blindAfter bool
		gatewayKeeps     bool            // RevokeLater after the failed SignOut, as the gateway does
		otherInstance    bool            // another instance signs the session out meanwhile
		answered         bool            // SignOut answers the sign-out (no error)
		unknown          bool            // its Ended.OutcomeUnknown
		before           bool            // its Ended.Before
		late             map[string]bool // the Manager's "signed out" line's flags; nil: none
	}{
		{name: "committed", answered: true, unknown: true},
		{name: "not committed", lost: true, answered: true},
		{name: "committed, the store away then", blindAfter: true,
			late: map[string]bool{"recorded_late": true, "outcome_unknown": true}},
		{name: "committed, the store away then, the gateway keeps it again", blindAfter: true, gatewayKeeps: true,
			late: map[string]bool{"recorded_late": true, "outcome_unknown": true}},
		{name: "not committed, signed out meanwhile by another instance", lost: true, otherInstance: true,
			answered: true, before: true},
		{name: "not committed, signed out meanwhile by another instance, the store away then", lost: true, otherInstance: true,
			blindAfter: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := backendtest.OpenBolt(t)
			c := newClock()
			ls := &lostCommitStore{Store: db, lost: tt.lost, blindAfter: tt.blindAfter}
			core, logs := observer.New(zapcore.InfoLevel)
			m := session.New(ls, session.Config{}, zap.New(core), c.now)
			u := addUser(t, db, activeUser())
			n := signIn(t, m, db, u, &session.Tokens{IDToken: idToken})
			if _, err := m.Resolve(ctx, n.Token); err != nil {
				t.Fatal(err)
			}
			if tt.otherInstance {
				ls.meanwhile = func() {
					c.advance(time.Second) // its end is not this sign-out's
					other := session.New(db, session.Config{}, nil, c.now)
					if e, err := other.SignOut(ctx, n.Token); err != nil || e == nil || e.Before {
						t.Errorf("the other instance's SignOut = %+v, %v; want the session ended by it", e, err)
					}
				}
			}
			ls.armed.Store(true)
			e, err := m.SignOut(ctx, n.Token)
			switch {
			case tt.answered && (err != nil || e == nil || e.Before != tt.before || e.OutcomeUnknown != tt.unknown || e.IDToken() != idToken):
				t.Fatalf("SignOut = %+v, %v; want the session ended, Before %v, OutcomeUnknown %v, with its ID token", e, err, tt.before, tt.unknown)
			case !tt.answered && (e != nil || !errors.Is(err, store.ErrOutcomeUnknown)):
				t.Fatalf("SignOut = %+v, %v; want ErrOutcomeUnknown", e, err)
			}
			if tt.gatewayKeeps {
				m.RevokeLater(n.Token, store.EventSessionLoggedOut)
			}
			if _, err := m.Resolve(ctx, n.Token); err == nil {
				t.Error("the session resolves after its sign-out")
			}
			ls.blind.Store(false)
			// A double click's second POST, here: on to the IdP's logout.
			if e, err := m.SignOut(ctx, n.Token); err != nil || e == nil || !e.Before || e.IDToken() != idToken {
				t.Errorf("the second click's SignOut = %+v, %v; want Before, with the ID token for the IdP's logout", e, err)
			}
			c.advance(time.Second)
			if err := m.Flush(ctx, true); err != nil {
				t.Fatal(err)
			}
			if k := loggedOutEvents(t, db); k != 1 {
				t.Errorf("%d session.logged_out events for one sign-out, want 1", k)
			}
			lines := logs.FilterMessage("signed out").All()
			switch {
			case tt.late == nil && len(lines) != 0:
				t.Errorf("the Manager logged %d \"signed out\" lines, want none (the gateway writes the line of a sign-out SignOut answers)", len(lines))
			case tt.late != nil && len(lines) != 1:
				t.Fatalf("the Manager logged %d \"signed out\" lines, want 1", len(lines))
			case tt.late != nil:
				f := lines[0].ContextMap()
				if f["user_id"] != u.ID || f["recorded_late"] != true || (f["outcome_unknown"] == true) != tt.late["outcome_unknown"] {
					t.Errorf("\"signed out\" line %v, want user_id %s, flags %v", f, u.ID, tt.late)
				}
			}
			if _, err := m.Resolve(ctx, n.Token); err == nil {
				t.Error("the session resolves after the Flush")
			}
		})
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
