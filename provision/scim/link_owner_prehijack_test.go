package scim_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSCIMAddressIsNotLinkableFromAnotherIdP: the SCIM client of one IdP
// (entra) writes whatever address it likes, with an externalId of its
// choosing. Were link_by_email at another IdP (corp) to link the person
// who owns that address into the user, whoever the externalId names would
// sign in as them at entra. So a SCIM create, and a SCIM write that
// changes a user's address, leave the address unvouched for
// (store.User.EmailVerified) and corp's verified sign-in gets an
// email_conflict; a SCIM write that keeps the address keeps its vouching.
func TestSCIMAddressIsNotLinkableFromAnotherIdP(t *testing.T) {
	const victim = "ceo@corp.example"
	corpSignIn := func(e *env) (*store.User, error) {
		p := &provision.Provisioner{Store: e.db, Now: func() time.Time { return e.now }}
		prof := mapping.Profile{UniqueUserID: "ceo-sub", FirstName: "C", LastName: "E", Email: victim}
		return p.Login(context.Background(), "corp", provision.Rules{JIT: true, LinkByEmail: true}, prof, true)
	}
	user := func(name, email string) string {
		return `{"userName":"` + name + `","externalId":"mallory","active":true,"emails":[{"value":"` + email + `","primary":true}]}`
	}

	t.Run("created by SCIM", func(t *testing.T) {
		e := newEnv(t, "entra", entraToken)
		e.vars["id"] = e.must(201, "POST", "/Users", user(victim, victim)).body["id"].(string)
		_, err := corpSignIn(e)
		denied(t, err, provision.ReasonEmailConflict)
		// Mallory's entra sign-in adopts the user her directory made,
		// which no corp subject is linked to.
		u, err := e.login(scimAndJIT, "mallory", "Mal")
		if err != nil || u.ID != e.vars["id"] || len(e.user("{{id}}").Links) != 1 {
			t.Fatalf("mallory: %+v, %v; want the SCIM user %s with her link alone", u, err, e.vars["id"])
		}
	})

	t.Run("address changed by SCIM", func(t *testing.T) {
		e := newEnv(t, "entra", entraToken)
		// Mallory's own user, her own address vouched for by her sign-in.
		u, err := e.login(scimAndJIT, "mallory", "Mal")
		if err != nil || !e.user(u.ID).EmailVerified {
			t.Fatalf("premise: %+v, %v", u, err)
		}
		e.vars["id"] = u.ID
		e.must(200, "PUT", "/Users/{{id}}", user("mallory", victim))
		if got := e.user("{{id}}"); got.Email != victim || got.EmailVerified {
			t.Fatalf("after the PUT: email %q, verified %v", got.Email, got.EmailVerified)
		}
		_, err = corpSignIn(e)
		denied(t, err, provision.ReasonEmailConflict)
	})

	t.Run("address kept by SCIM", func(t *testing.T) {
		e := newEnv(t, "entra", entraToken)
		p := &provision.Provisioner{Store: e.db, Now: func() time.Time { return e.now }}
		prof := mapping.Profile{UniqueUserID: "ceo-at-entra", FirstName: "C", LastName: "E", Email: victim}
		owner, err := p.Login(context.Background(), "entra", scimAndJIT, prof, true)
		if err != nil {
			t.Fatal(err)
		}
		e.vars["id"] = owner.ID
		// Another spelling of the same mailbox, and a new name.
		e.must(200, "PUT", "/Users/{{id}}", `{"userName":"ceo","externalId":"ceo-at-entra","name":{"givenName":"Chief"},`+
			`"emails":[{"value":"CEO@corp.example","primary":true}]}`)
		if u, err := corpSignIn(e); err != nil || u.ID != owner.ID {
			t.Fatalf("corp sign-in: %+v, %v; want linked into %s", u, err, owner.ID)
		}
	})
}
