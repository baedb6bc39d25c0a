package provision_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// The victim's address, and the sign-ins that compete for it.
const victimEmail = "ceo@corp.example"

var linkRules = provision.Rules{JIT: true, LinkByEmail: true}

// profileWith is full(sub) with the victim's address.
func profileWith(sub string) mapping.Profile {
	p := full(sub)
	p.Email = victimEmail
	return p
}

// expectNotLinked signs the victim in at corp (link_by_email, verified)
// and expects the email_conflict that names owner and says why it did not
// link: the owner's address came from no sign-in that verified it.
func (e *env) expectNotLinked(owner *store.User) {
	e.t.Helper()
	_, ev := e.expectDenied("corp", linkRules, profileWith("ceo-sub"), true, provision.ReasonEmailConflict, store.EventJITConflict)
	if ev.UserID != owner.ID || ev.Detail["not_linked"] != "owner email not verified" {
		e.t.Errorf("conflict event %+v, want owner %s and not_linked %q", ev, owner.ID, "owner email not verified")
	}
	if _, err := e.byLink("corp", "ceo-sub"); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("the victim's corp subject was linked: %v", err)
	}
}

// TestLinkByEmailRefusesOwnerWhoseAddressNobodyVerified: an attacker who
// signs in first through a source that does not verify addresses (a SAML
// IdP, an Entra multi-tenant IdP, an OIDC IdP with allow_unverified_email:
// all sign in with verified false) gets a user holding the victim's
// address. Linking the victim's later verified sign-in into it would hand
// the attacker, whose link stays on the user, the victim's account (a
// "pre-hijacked" account). link_by_email must refuse, whether the
// attacker's user was created with the address or given it by a force
// update, and the attacker's user keeps only the attacker's link.
func TestLinkByEmailRefusesOwnerWhoseAddressNobodyVerified(t *testing.T) {
	for _, tc := range []struct {
		name  string
		claim func(e *env) *store.User // the attacker's user, holding victimEmail
	}{
		{"created by an unverified sign-in", func(e *env) *store.User {
			u, err := e.login("partner-saml", jit, profileWith("mallory"), false)
			if err != nil {
				e.t.Fatal(err)
			}
			return u
		}},
		{"given it by an unverified force update", func(e *env) *store.User {
			e.mustLogin("partner-saml", jit, full("mallory")) // verified, mallory's own address
			u, err := e.login("partner-saml", jit, profileWith("mallory"), false)
			if err != nil {
				e.t.Fatal(err)
			}
			if u.Email != victimEmail {
				e.t.Fatalf("premise: the force update kept %q", u.Email)
			}
			return u
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			mallory := tc.claim(e)
			e.expectNotLinked(mallory)
			again, err := e.login("partner-saml", jit, profileWith("mallory"), false)
			if err != nil || again.ID != mallory.ID {
				t.Fatalf("mallory signs in as %v, %v; want her own user %s", again, err, mallory.ID)
			}
			if want := []store.Link{{IdP: "partner-saml", Subject: "mallory"}}; !slices.Equal(e.user(mallory.ID).Links, want) {
				t.Errorf("mallory's user has links %v, want only %v", e.user(mallory.ID).Links, want)
			}
		})
	}
}

// TestLinkByEmailRefusesSCIMUserOfAnotherIdP: the SCIM client of IdP
// partner creates a user with the victim's address and, as its
// externalId, the attacker's subject at partner. Were the victim's first
// verified sign-in at corp linked into it, the attacker's sign-in at
// partner would then adopt it by externalId and be the victim. A SCIM
// write does not vouch for the address (store.User.EmailVerified false),
// so the link is refused, and the externalId adoption, scoped to partner,
// finds a user no corp subject is linked to.
func TestLinkByEmailRefusesSCIMUserOfAnotherIdP(t *testing.T) {
	e := newEnv(t)
	planted := e.seed(&store.User{UserName: victimEmail, Email: victimEmail, FirstName: "C", LastName: "E",
		Active: true, Source: store.SourceSCIM, IdP: "partner", ExternalID: "mallory"})
	e.expectNotLinked(planted)
	mallory, err := e.login("partner", provision.Rules{JIT: true, SCIMManaged: true}, mapping.Profile{UniqueUserID: "mallory"}, false)
	if err != nil || mallory.ID != planted.ID {
		t.Fatalf("mallory signs in as %v, %v; want the user partner's SCIM made, %s", mallory, err, planted.ID)
	}
	if want := []store.Link{{IdP: "partner", Subject: "mallory"}}; !slices.Equal(e.user(planted.ID).Links, want) {
		t.Errorf("links %v, want only %v", e.user(planted.ID).Links, want)
	}
}

// TestLinkByEmailLinksOwnerWhoseAddressWasVerified: refusing unvouched
// owners must not stop link_by_email doing its job. A user created by a
// sign-in that verified the address is linked into; so is a user stored
// before EmailVerified was kept (or written by SCIM) once a sign-in of
// their own has vouched for the address they hold, while a sign-in that
// does not vouch for it leaves them unlinkable.
func TestLinkByEmailLinksOwnerWhoseAddressWasVerified(t *testing.T) {
	t.Run("created by a verified sign-in", func(t *testing.T) {
		e := newEnv(t)
		owner := e.mustLogin("okta", jit, profileWith("ceo-at-okta"))
		if !e.user(owner.ID).EmailVerified {
			t.Fatal("a verified sign-in created a user whose address is not vouched for")
		}
		if u := e.mustLogin("corp", linkRules, profileWith("ceo-sub")); u.ID != owner.ID {
			t.Errorf("the victim signed in as %s, want linked into %s", u.ID, owner.ID)
		}
	})
	for _, src := range []string{store.SourceJIT, store.SourceSCIM} {
		t.Run("stored before the bit ("+src+"), after its own verified sign-in", func(t *testing.T) {
			e := newEnv(t)
			old := e.seed(&store.User{Email: victimEmail, FirstName: "C", LastName: "E", Active: true, Source: src,
				IdP: "okta", ExternalID: "ceo-at-okta", Links: []store.Link{{IdP: "okta", Subject: "ceo-at-okta"}}})
			e.expectNotLinked(old)
			// A sign-in that does not vouch changes nothing.
			if _, err := e.login("okta", jit, profileWith("ceo-at-okta"), false); err != nil {
				t.Fatal(err)
			}
			e.expectNotLinked(old)
			e.mustLogin("okta", jit, profileWith("ceo-at-okta"))
			if u := e.mustLogin("corp", linkRules, profileWith("ceo-sub")); u.ID != old.ID {
				t.Errorf("signed in as %s, want linked into %s", u.ID, old.ID)
			}
			// And an unverified sign-in with the same address never takes
			// the vouching back.
			if _, err := e.login("okta", jit, profileWith("ceo-at-okta"), false); err != nil || !e.user(old.ID).EmailVerified {
				t.Errorf("an unverified sign-in with the unchanged address cleared EmailVerified (%v)", err)
			}
		})
	}
}
