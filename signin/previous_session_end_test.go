package signin_test

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

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
