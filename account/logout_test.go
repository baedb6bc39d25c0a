package account_test

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// logoutInfo is what a sign-in keeps for the IdP's logout: the subject
// the IdP knows the user by and its session ID.
func logoutInfo(subject, sessionID string) store.LogoutInfo {
	return store.LogoutInfo{Subject: subject, SessionID: sessionID}
}

// TestEndIdPSessions ends exactly the sessions an IdP's logout names: by
// subject, narrowed by session ID when one is given; another IdP's
// sessions with the same subject, and other users', stay.
func TestEndIdPSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, a1 := e.signIn("okta", "sub-1", jit) // idx-1
	_, a2 := e.signIn("okta", "sub-1", jit) // idx-2
	_, b := e.signIn("okta", "sub-2", jit)  // idx-3
	_, c := e.signIn("entra", "sub-1", jit) // idx-4: same subject, other IdP

	n, err := e.acc.EndIdPSessions(ctx, "okta", logoutInfo("sub-1", "idx-2"))
	if err != nil || n != 1 {
		t.Fatalf("by subject and session ID: %d, %v", n, err)
	}
	if e.signedOut(a1) || !e.signedOut(a2) || e.signedOut(b) || e.signedOut(c) {
		t.Fatalf("after ending idx-2: a1 %v a2 %v b %v c %v", e.signedOut(a1), e.signedOut(a2), e.signedOut(b), e.signedOut(c))
	}
	if n, err := e.acc.EndIdPSessions(ctx, "okta", logoutInfo("sub-1", "")); err != nil || n != 1 || !e.signedOut(a1) {
		t.Fatalf("by subject: %d, %v", n, err)
	}
	if e.signedOut(b) || e.signedOut(c) {
		t.Error("another user's or another IdP's session ended")
	}
	if n, err := e.acc.EndIdPSessions(ctx, "okta", logoutInfo("sub-1", "")); err != nil || n != 0 {
		t.Errorf("again: %d, %v", n, err)
	}
	// An OIDC logout token may name the session alone ("sid").
	if n, err := e.acc.EndIdPSessions(ctx, "okta", store.LogoutInfo{SessionID: "idx-4"}); err != nil || n != 0 || e.signedOut(c) {
		t.Errorf("another IdP's session ID: %d, %v", n, err)
	}
	if n, err := e.acc.EndIdPSessions(ctx, "entra", store.LogoutInfo{SessionID: "idx-4"}); err != nil || n != 1 || !e.signedOut(c) || e.signedOut(b) {
		t.Errorf("by session ID alone: %d, %v", n, err)
	}
	if _, err := e.acc.EndIdPSessions(ctx, "okta", store.LogoutInfo{}); err == nil {
		t.Error("a logout naming nothing was accepted")
	}
	ev := e.events(store.EventSessionLoggedOut)
	if len(ev) != 3 || ev[0].Reason != account.ReasonIdPLogout || ev[0].IdP != "okta" {
		t.Errorf("logout events = %+v", ev)
	}
}
