package signin_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// loggedOut lists the session.logged_out events, each as its reason ("" for
// a sign-out's).
func (e *env) loggedOut() []string {
	e.t.Helper()
	var out []string
	for _, ev := range e.auditEvents(store.EventSessionLoggedOut) {
		out = append(out, ev.Reason)
	}
	slices.Sort(out)
	return out
}

// TestSignInAgainWithSignedOutSessionsCookie: a sign-out keeps its session
// stored, ended, until the sweep, and the browser may still present its
// cookie to a sign-in (a copy of it; another tab's callback; the SAML
// flow's previous-session cookie saved at the sign-in's start). The
// sign-in deletes that row, but neither audits it again (reason
// signed_in_again) nor reports it as a session it ended: it had ended. A
// live previous session is ended and audited as before.
func TestSignInAgainWithSignedOutSessionsCookie(t *testing.T) {
	for _, tt := range []struct {
		name      string
		signedOut bool
		want      []string
	}{
		{"live", false, []string{"signed_in_again"}},
		{"signed out", true, []string{""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.idp(idp.ProtocolOIDC, "generic")
			ctx := context.Background()
			first, err := e.svc.SignIn(ctx, p, oidcAssertion("1", "Lovelace", false), "")
			if err != nil || first.Session == nil {
				t.Fatalf("first sign-in = %+v, %v", first, err)
			}
			if tt.signedOut {
				if ended, err := e.sessions.SignOut(ctx, first.Session.Token); err != nil || ended == nil || ended.Before {
					t.Fatalf("SignOut = %+v, %v", ended, err)
				}
			}
			again, err := e.svc.SignIn(ctx, p, oidcAssertion("2", "Lovelace", false), first.Session.Session.Hash)
			if err != nil || again.Session == nil {
				t.Fatalf("sign-in again = %+v, %v", again, err)
			}
			if got := e.loggedOut(); !slices.Equal(got, tt.want) {
				t.Errorf("session.logged_out reasons %q, want %q", got, tt.want)
			}
			if again.EndedPrevious == tt.signedOut {
				t.Errorf("EndedPrevious %v, want %v", again.EndedPrevious, !tt.signedOut)
			}
			if err := e.db.View(ctx, func(tx store.Tx) error {
				_, err := tx.Session(first.Session.Session.Hash)
				return err
			}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the previous session is still stored: %v", err)
			}
		})
	}
}

// TestSignOutRacesSignInAgain: a sign-out and a sign-in that ends the same
// previous session, at once: whichever commits first, the session gives
// exactly one session.logged_out event.
func TestSignOutRacesSignInAgain(t *testing.T) {
	e := newEnv(t)
	p := e.idp(idp.ProtocolOIDC, "generic")
	ctx := context.Background()
	prev, err := e.svc.SignIn(ctx, p, oidcAssertion("r", "Lovelace", false), "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		before := len(e.loggedOut())
		var (
			wg   sync.WaitGroup
			next = prev
		)
		wg.Go(func() {
			if _, err := e.sessions.SignOut(ctx, prev.Session.Token); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			o, err := e.svc.SignIn(ctx, p, oidcAssertion(fmt.Sprint("r", i), "Lovelace", false), prev.Session.Session.Hash)
			if err != nil || o.Session == nil {
				t.Errorf("sign-in again = %+v, %v", o, err)
				return
			}
			next = o
		})
		wg.Wait()
		if n := len(e.loggedOut()) - before; n != 1 {
			t.Errorf("round %d: %d session.logged_out events for one session, want 1", i, n)
		}
		prev = next
	}
}

// TestSignedInAgainNamesThePreviousSessionsOwner: the browser came with a
// live session of another IdP and user (one person's SAML account, then
// their OIDC one; or a shared computer): the session.logged_out event the
// sign-in writes for it names that session's IdP and user, so that
// `audit --user` of the person signed out shows where their session went,
// not the user who signed in after them.
func TestSignedInAgainNamesThePreviousSessionsOwner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	samlIdP, oidcIdP := e.idp(idp.ProtocolSAML, "okta"), e.idp(idp.ProtocolOIDC, "generic")
	before, err := e.svc.SignIn(ctx, samlIdP, samlAssertion("prev", "Lovelace", false), "")
	if err != nil || before.Session == nil {
		t.Fatalf("SAML sign-in: %+v %v", before, err)
	}
	next := oidcAssertion("next", "Lovelace", false)
	next.Attributes["email"] = []string{"ada@other.example"} // another account: no email conflict
	after, err := e.svc.SignIn(ctx, oidcIdP, next, before.Session.Session.Hash)
	if err != nil || after.Session == nil || !after.EndedPrevious {
		t.Fatalf("OIDC sign-in with the SAML session's cookie: %+v %v", after, err)
	}
	if before.User.ID == after.User.ID {
		t.Fatalf("both sign-ins gave user %s; the test needs two users", before.User.ID)
	}
	evs := e.auditEvents(store.EventSessionLoggedOut)
	if len(evs) != 1 {
		t.Fatalf("%d session.logged_out events, want 1: %+v", len(evs), evs)
	}
	if ev := evs[0]; ev.Reason != "signed_in_again" || ev.IdP != samlIdP.Name || ev.UserID != before.User.ID {
		t.Errorf("session.logged_out = {reason %q, idp %q, user %q}, want {signed_in_again, %q, %q}",
			ev.Reason, ev.IdP, ev.UserID, samlIdP.Name, before.User.ID)
	}
}

// TestSignInWithUnknownPreviousSession: the cookie the browser comes with
// names no stored session (swept long ago, or made up): the sign-in
// succeeds in its one commit, ends nothing and audits no
// session.logged_out, rather than failing the person's sign-in.
func TestSignInWithUnknownPreviousSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.idp(idp.ProtocolOIDC, "generic")
	before := e.db.commits.Load()
	out, err := e.svc.SignIn(ctx, p, oidcAssertion("1", "Lovelace", false), session.Hash("a-cookie-never-issued"))
	if err != nil || out.Session == nil {
		t.Fatalf("sign-in with an unknown previous session: %+v %v", out, err)
	}
	if out.EndedPrevious {
		t.Error("EndedPrevious for a session that was not stored")
	}
	if n := e.db.commits.Load() - before; n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
	if evs := e.auditEvents(store.EventSessionLoggedOut); len(evs) != 0 {
		t.Errorf("session.logged_out events for a session that was not stored: %+v", evs)
	}
}
