package signin_test

import (
	"context"
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestGroupsClaimOmittedWhenEmpty: Okta (group attribute statement, groups
// claim filter) and Entra (groups claim) leave the groups attribute out
// when the user is in no group they would send. A user removed at the IdP
// from their last such group ("admins") must lose it at the next sign-in
// with update force, or keep passing `allow group admins` for good; the
// default_groups and SCIM groups stay. An overage marker still keeps the
// stored groups, and the presets of IdPs that may simply not be set up to
// send groups (generic, pingone) keep them too: absence says nothing there.
func TestGroupsClaimOmittedWhenEmpty(t *testing.T) {
	for _, tc := range []struct {
		name, protocol, preset string
		overage                bool
		wantKept               bool
	}{
		{"okta saml", idp.ProtocolSAML, "okta", false, false},
		{"okta oidc", idp.ProtocolOIDC, "okta", false, false},
		{"entra saml", idp.ProtocolSAML, "entra", false, false},
		{"entra oidc", idp.ProtocolOIDC, "entra", false, false},
		{"entra saml overage", idp.ProtocolSAML, "entra", true, true},
		{"entra oidc overage", idp.ProtocolOIDC, "entra", true, true},
		{"generic saml", idp.ProtocolSAML, "generic", false, true},
		{"generic oidc", idp.ProtocolOIDC, "generic", false, true},
		{"pingone saml", idp.ProtocolSAML, "pingone", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			p := e.idp(tc.protocol, tc.preset)
			p.Rules.DefaultGroups = []string{"everyone"}
			assertion := func(id string, overage bool) *idp.Assertion {
				var a *idp.Assertion
				if tc.protocol == idp.ProtocolSAML {
					a = samlAssertion(id, "Lovelace", overage)
				} else {
					a = oidcAssertion(id, "Lovelace", overage)
					a.Attributes["oid"] = []string{"oid-ada"} // entra's user ID
				}
				a.IdP = p.Name
				return a
			}
			first := assertion("r1", false)
			first.Attributes["groups"] = []string{"admins"}
			out, err := e.svc.SignIn(ctx, p, first, "")
			if err != nil || out.Session == nil {
				t.Fatalf("first sign-in: %v %+v", err, out)
			}
			uid := out.User.ID
			err = e.db.Update(ctx, func(tx store.Tx) error {
				return tx.PutGroup(&store.Group{IdP: p.Name, DisplayName: "scim-team", Members: []string{uid}})
			})
			if err != nil {
				t.Fatal(err)
			}

			// Removed from admins at the IdP: no groups attribute (or,
			// for an overage, the marker instead).
			second := assertion("r2", tc.overage)
			delete(second.Attributes, "groups")
			out, err = e.svc.SignIn(ctx, p, second, "")
			if err != nil || out.Session == nil {
				t.Fatalf("second sign-in: %v %+v", err, out)
			}
			want := []string{"everyone", "scim-team"}
			if tc.wantKept {
				want = []string{"admins", "everyone", "scim-team"}
			}
			var stored *store.User
			err = e.db.View(ctx, func(tx store.Tx) (err error) {
				stored, err = tx.User(uid)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.User.Groups, want) || !slices.Equal(stored.Groups, want) {
				t.Errorf("groups after a sign-in without the attribute = %q (stored %q), want %q", out.User.Groups, stored.Groups, want)
			}
			if out.Result.GroupsOverage != tc.overage {
				t.Errorf("GroupsOverage = %v, want %v", out.Result.GroupsOverage, tc.overage)
			}
		})
	}
}
