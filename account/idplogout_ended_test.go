package account_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestIdPLogoutOfEndedSessionAuditsNothing: an IdP's logout message that
// names a session already idle past idle_timeout (refused at its next
// request, not swept yet) ended nothing there: as with every other way of
// ending sessions (TestUserDetailOmitsIdleSessions), it is neither audited
// as session.logged_out nor counted. A message naming only such sessions
// (anyone can send a front-channel sid) writes nothing, leaving them to
// the sweep; one naming a live session too deletes both, and audits and
// counts the live one.
func TestIdPLogoutOfEndedSessionAuditsNothing(t *testing.T) {
	e := newJudgedEnv(t)
	ctx := context.Background()
	u, _ := e.signIn("okta", "sub-1", jit) // session ID idx-1
	e.now = e.now.Add(2 * time.Hour)       // idle (idle_timeout 1h by default)
	ender := account.IdPLogout{Accounts: e.acc}

	// Front-channel: its sid, no subject, no single-use ID.
	n, err := ender.EndSessions(ctx, "okta", "", []string{"idx-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("front-channel logout of the idle session: %d sessions ended, want 0", n)
	}
	if evs := e.events(store.EventSessionLoggedOut); len(evs) != 0 {
		t.Errorf("session.logged_out events %+v for a session that had already ended", evs)
	}
	if got := e.storedSessions(u.ID); got != 1 {
		t.Errorf("%d sessions stored, want the idle one left to the sweep (no write)", got)
	}

	// A SAML LogoutRequest (single use) naming the subject: the idle
	// session and a live one.
	_, live := e.signIn("okta", "sub-1", jit)
	once := &idp.SingleUse{Kind: "saml_id", ID: "okta/LogoutRequest:id-1", Until: e.now.Add(10 * time.Minute), Code: "saml_replayed"}
	n, err = ender.EndSessions(ctx, "okta", "sub-1", nil, once)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("SAML logout of an idle and a live session: %d ended, want 1", n)
	}
	if evs := e.events(store.EventSessionLoggedOut); len(evs) != 1 || evs[0].Reason != account.ReasonIdPLogout {
		t.Errorf("session.logged_out events %+v, want one (the live session's)", evs)
	}
	if got := e.storedSessions(u.ID); got != 0 || !e.signedOut(live) {
		t.Errorf("%d sessions stored (live one signed out: %v), want both deleted", got, e.signedOut(live))
	}
}
