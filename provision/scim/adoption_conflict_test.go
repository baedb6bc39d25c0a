package scim_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestRekeyedUserIsNotHandedToANewSubject: adoption by externalId is "for
// a user SCIM provisioned before their first sign-in" (provision's
// knownUser); a user who already signs in at this IdP under another
// subject is, to the IdP, another person (linkRefusal's rule). Okta matches
// by userName: a leaver's username given to a new person makes Okta link
// the new person to the leaver's user and write its own user ID as
// externalId, by PUT or PATCH. The new person's first sign-in is then
// refused (external_id_conflict) instead of landing in the leaver's
// account; the leaver's link stays the only one and still signs in. The
// explicit way to re-key (docs/scim.md, Conflicts): the directory (or an
// administrator) deletes the old user, the directory creates the new
// person, and their sign-in adopts that new user.
func TestRekeyedUserIsNotHandedToANewSubject(t *testing.T) {
	const doc = `"userName":"sam@corp.example","active":true,"name":{"givenName":"Sam","familyName":"N"},` +
		`"emails":[{"value":"sam@corp.example","primary":true}]`
	for _, tt := range []struct{ name, method, body string }{
		{"PUT", "PUT", `{"externalId":"sub-newcomer",` + doc + `}`},
		{"PATCH", "PATCH", patchBody(`{"op":"replace","path":"externalId","value":"sub-newcomer"}`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			p := &provision.Provisioner{Store: e.db, Now: func() time.Time { return e.now }}
			signIn := func(sub string) (*store.User, error) {
				prof := mapping.Profile{UniqueUserID: sub, FirstName: "Sam", LastName: "S", Email: "sam@corp.example"}
				return p.Login(context.Background(), "entra", scimAndJIT, prof, true)
			}
			leaver, err := signIn("sub-leaver")
			if err != nil {
				t.Fatal(err)
			}
			e.vars["id"] = leaver.ID
			e.must(200, tt.method, "/Users/{{id}}", tt.body)
			if got := e.user(leaver.ID).ExternalID; got != "sub-newcomer" {
				t.Fatalf("externalId %q after the %s", got, tt.method)
			}

			u, err := signIn("sub-newcomer")
			denied(t, err, provision.ReasonExternalIDConflict)
			if u != nil {
				t.Errorf("the refused sign-in also returned user %s", u.ID)
			}
			if got := e.user(leaver.ID).Links; !slices.Equal(got, []store.Link{{IdP: "entra", Subject: "sub-leaver"}}) {
				t.Errorf("the leaver's user %s has links %v after the newcomer's sign-in, want sub-leaver's alone", leaver.ID, got)
			}
			if again, err := signIn("sub-leaver"); err != nil || again.ID != leaver.ID {
				t.Errorf("the leaver's own sign-in: %v, %v; want user %s", again, err, leaver.ID)
			}

			// Re-keying on purpose: delete the old user, create the new one.
			e.must(204, "DELETE", "/Users/{{id}}", "")
			id := e.must(201, "POST", "/Users", `{"externalId":"sub-newcomer",`+doc+`}`).body["id"].(string)
			u, err = signIn("sub-newcomer")
			if err != nil || u.ID != id || u.ID == leaver.ID {
				t.Fatalf("the newcomer after the delete and create: %v, %v; want the new user %s", u, err, id)
			}
			if got := e.user(id).Links; !slices.Equal(got, []store.Link{{IdP: "entra", Subject: "sub-newcomer"}}) {
				t.Errorf("the new user's links %v, want sub-newcomer's", got)
			}
		})
	}
}
