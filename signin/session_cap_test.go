package signin_test

import (
	"context"
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSignInAgainAtTheCap: a user at max_sessions_per_user signs in again
// with the browser's previous cookie. That session ends in the sign-in's
// transaction, so it must not count against the cap: no other device's
// session ends, and the previous one is audited as signed in again, not
// as over the limit.
func TestSignInAgainAtTheCap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cap     int
		devices int // sessions before the sign-in again, on as many devices
	}{
		{"cap 2, another device", 2, 2},
		{"cap 1, this device only", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.sessions = session.New(e.db, session.Config{MaxPerUser: tc.cap}, nil, nil)
			e.svc = &signin.Service{Store: e.db, Sessions: e.sessions}
			p := e.idp(idp.ProtocolOIDC, "generic")
			ctx := context.Background()
			var devices []*signin.Outcome
			for i := range tc.devices {
				out, err := e.svc.SignIn(ctx, p, oidcAssertion(string(rune('a'+i)), "Lovelace", false), "")
				if err != nil || out.Session == nil {
					t.Fatalf("device %d: %+v %v", i, out, err)
				}
				devices = append(devices, out)
			}
			this := devices[len(devices)-1]
			again, err := e.svc.SignIn(ctx, p, oidcAssertion("again", "Lovelace", false), session.Hash(this.Session.Token))
			if err != nil || again.Session == nil {
				t.Fatalf("sign-in again: %+v %v", again, err)
			}
			if !again.EndedPrevious || len(again.Session.Ended) != 0 {
				t.Errorf("ended previous %v, ended over the cap %d; want the previous session ended as such, none over the cap",
					again.EndedPrevious, len(again.Session.Ended))
			}
			for i, d := range devices[:len(devices)-1] {
				if !e.sessionExists(d.Session.Session.Hash) {
					t.Errorf("device %d's session ended by the cap", i)
				}
			}
			if types := e.auditTypes(); slices.Contains(types, store.EventSessionRevoked) || !slices.Contains(types, store.EventSessionLoggedOut) {
				t.Errorf("audit %v: want the previous session logged out (signed_in_again), none revoked", types)
			}
			// The trail tells this ending from a sign-out.
			if events := e.auditEvents(store.EventSessionLoggedOut); len(events) != 1 || events[0].Reason != "signed_in_again" {
				t.Errorf("session.logged_out events %+v, want one with reason signed_in_again", events)
			}
		})
	}
}
