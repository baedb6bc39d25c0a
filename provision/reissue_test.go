package provision_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestNewSubjectTakesReissuedAddress: Okta deactivates a leaver (ada,
// who signed in as old-sub) and keeps them, address and all; later it
// gives the address to a new person, new-sub, whose first sign-in vouches
// for it. New-sub is created with the address and the leaver loses it
// (email_released), the rule a force update already follows for a known
// user (mayTakeEmail): with link_by_email off or on, the new person is
// never linked into the leaver. Every other holder still refuses.
func TestNewSubjectTakesReissuedAddress(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(map[bool]string{false: "link_by_email off", true: "link_by_email on"}[link], func(t *testing.T) {
			e := newEnv(t)
			rules := provision.Rules{JIT: true, LinkByEmail: link, SCIMManaged: true}
			leaver := e.mustLogin("okta", rules, full("old-sub"))
			rec := e.user(leaver.ID)
			rec.Active, rec.Source = false, store.SourceSCIM // SCIM PATCH active=false
			e.seed(rec)
			n := len(e.audit())

			prof := full("new-sub")
			prof.Email = "OLD-SUB@example.com" // the same mailbox, another spelling
			u, err := e.login("okta", rules, prof, true)
			if err != nil {
				t.Fatalf("the new holder of a re-issued address: %v", err)
			}
			if u.ID == leaver.ID || u.Email != prof.Email || !u.EmailVerified {
				t.Errorf("signed in as %s (leaver %s), email %q verified %v", u.ID, leaver.ID, u.Email, u.EmailVerified)
			}
			// EmailVerified speaks of Email: with no address, nothing is
			// vouched for.
			if got := e.user(leaver.ID); got.Email != "" || got.EmailVerified || got.Active || len(got.Links) != 1 {
				t.Errorf("leaver after: %+v", got)
			}
			var released []store.Event
			evs := e.audit()[n:]
			for _, ev := range evs {
				if ev.Reason == "email_released" {
					released = append(released, ev)
				}
			}
			if len(released) != 1 || released[0].Type != store.EventUserUpdated || released[0].UserID != leaver.ID ||
				released[0].Subject != "old-sub" || released[0].Detail["released_to"] != u.ID {
				t.Errorf("release events %+v (all %v)", released, types(evs))
			}
			if e.logs.FilterMessage("sso user email taken from another user: the IdP gives the address to this user now").Len() != 1 {
				t.Error("no log line for the release")
			}
		})
	}
}

// TestNewSubjectRefusedWhereAddressCannotBeTaken: the cases the re-issue
// rule leaves refused (email_conflict), each with its not_linked detail.
func TestNewSubjectRefusedWhereAddressCannotBeTaken(t *testing.T) {
	for _, tt := range []struct {
		name      string
		holder    *store.User
		verified  bool
		notLinked string
		update    provision.UpdateMode
	}{
		// Another IdP's user: okta cannot say what entra gives them.
		{"holder of another idp", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceJIT, IdP: "entra", ExternalID: "e-1", Links: []store.Link{{IdP: "entra", Subject: "e-1"}}},
			true, "link_by_email off", provision.UpdateForce},
		// Entra's SCIM provisioned them, though they sign in only here:
		// entra's directory speaks for their address.
		{"another idp's SCIM user linked only here", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceSCIM, IdP: "entra", ExternalID: "e-1", Links: []store.Link{{IdP: "okta", Subject: "old-sub"}}},
			true, "link_by_email off", provision.UpdateForce},
		// Signs in here and at entra: entra speaks for them too.
		{"holder also at another idp", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceJIT, IdP: "okta", ExternalID: "o-1",
			Links: []store.Link{{IdP: "okta", Subject: "o-1"}, {IdP: "entra", Subject: "e-1"}}},
			true, "link_by_email off", provision.UpdateForce},
		// okta did not vouch for the address.
		{"unverified", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceJIT, IdP: "okta", ExternalID: "o-1", Links: []store.Link{{IdP: "okta", Subject: "o-1"}}},
			false, "link_by_email off", provision.UpdateForce},
		// A user okta's SCIM provisioned, who never signed in: perhaps
		// this very person under an externalId that is not the sign-in's
		// user ID (Entra's default mailNickname): no second account.
		{"SCIM user with another externalId", &store.User{Email: "ada@example.com", Active: true,
			Source: store.SourceSCIM, IdP: "okta", ExternalID: "ada", UserName: "ada@example.com"},
			true, "scim externalId differs from the sign-in's user ID", provision.UpdateForce},
		// With update import, the stored records win over a sign-in.
		{"update import", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceJIT, IdP: "okta", ExternalID: "o-1", Links: []store.Link{{IdP: "okta", Subject: "o-1"}}},
			true, "link_by_email off", provision.UpdateImport},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			holder := e.seed(tt.holder)
			prof := full("new-sub")
			prof.Email = "ada@example.com"
			rules := provision.Rules{JIT: true, Update: tt.update}
			_, ev := e.expectDenied("okta", rules, prof, tt.verified, provision.ReasonEmailConflict, store.EventJITConflict)
			if ev.UserID != holder.ID || ev.Detail["not_linked"] != tt.notLinked {
				t.Errorf("conflict event %+v, want not_linked %q", ev, tt.notLinked)
			}
			if got := e.lastLog("sso login denied: email belongs to another user").ContextMap()["not_linked"]; got != tt.notLinked {
				t.Errorf("log not_linked = %v, want %q", got, tt.notLinked)
			}
		})
	}
}

// TestPendingNewSubjectTakesNothing: with create_as pending, a new
// person's first sign-in is refused until an administrator approves them;
// it must not strip the address from the approved user holding it, as a
// re-issued address would otherwise: it stays an email conflict.
func TestPendingNewSubjectTakesNothing(t *testing.T) {
	e := newEnv(t)
	holder := e.mustLogin("okta", provision.Rules{JIT: true}, full("old-sub"))
	prof := full("new-sub")
	prof.Email = holder.Email
	if _, err := e.login("okta", provision.Rules{JIT: true, CreatePending: true}, prof, true); err == nil {
		t.Fatal("a pending first sign-in was let in")
	}
	if got := e.user(holder.ID); got.Email != holder.Email {
		t.Errorf("an unapproved sign-in released the approved holder's address: holder now %q", got.Email)
	}
}
