package caddymodule_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/store"
)

// entraRoleURI is the SAML attribute Entra sends a user's app roles in.
const entraRoleURI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"

// entraIDToken is an Entra ID token's claims for ada (preset entra keys her
// on oid), with extra claims set and nil ones removed.
func entraIDToken(extra map[string]any) map[string]any {
	c := map[string]any{
		"sub": "pairwise-sub-ada", "oid": "oid-ada", "tid": "tenant-1", "given_name": "Ada", "family_name": "Lovelace",
		"preferred_username": "ada@example.com", "email": "ada@example.com",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// sawGroups is X-Forwarded-Groups as a sorted list, whatever order the
// gateway keeps.
func sawGroups(saw echoed) []string {
	h := saw.header("X-Forwarded-Groups")
	if h == "" {
		return nil
	}
	g := strings.Split(h, ",")
	slices.Sort(g)
	return g
}

// TestEntraAppRolesSurviveGroupsOverage: an operator follows Microsoft's
// advice against groups overage and maps groups from app roles; a user in
// too many groups still carries the overage marker, which stands in for the
// groups claim, not for the roles. The roles reach the app, at the first
// sign-in (no lock-out) and at a later one (a removed role goes).
func TestEntraAppRolesSurviveGroupsOverage(t *testing.T) {
	t.Run("saml groups.link", func(t *testing.T) {
		w := newSAMLWorld(t, "\t\t\tpreset entra\n\t\t\tjit\n\t\t\tmap groups "+entraRoleURI+"\n").start()
		over := samlPerson
		over.GroupsOverage = true
		for _, roles := range [][]string{{"App.Admin", "App.Reader"}, {"App.Reader"}} {
			u := samltest.Entra("ada", "ada-pw", over)
			u.Attributes[entraRoleURI] = roles
			w.addUser(u)
			saw := newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
			if got := sawGroups(saw); !slices.Equal(got, roles) {
				t.Errorf("roles %q sent with groups.link; X-Forwarded-Groups = %q", roles, got)
			}
		}
		if got := auditReasons(t, store.EventGroupsOverage); len(got) != 0 {
			t.Errorf("groups overage audited for groups read from roles: %v", got)
		}
	})

	t.Run("oidc hasgroups", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tpreset entra\n\t\t\tjit\n\t\t\tmap groups roles\n").start()
		for _, roles := range [][]string{{"App.Admin", "App.Reader"}, {"App.Reader"}} {
			if err := w.idp.SetClaims("ada", entraIDToken(map[string]any{"hasgroups": true, "roles": roles})); err != nil {
				t.Fatal(err)
			}
			saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
			if got := sawGroups(saw); !slices.Equal(got, roles) {
				t.Errorf("roles %q sent with hasgroups; X-Forwarded-Groups = %q", roles, got)
			}
		}
		if got := auditReasons(t, store.EventGroupsOverage); len(got) != 0 {
			t.Errorf("groups overage audited for groups read from roles: %v", got)
		}
	})
}

// TestEntraGroupsAndAppRolesUnion: `map groups` naming the groups claim and
// the app roles claim gives the app both, for a user who has both.
func TestEntraGroupsAndAppRolesUnion(t *testing.T) {
	t.Run("oidc", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tpreset entra\n\t\t\tjit\n\t\t\tmap groups groups roles\n").start()
		if err := w.idp.SetClaims("ada", entraIDToken(map[string]any{
			"groups": []string{"g-eng", "g-ops"}, "roles": []string{"App.Admin", "g-eng"}})); err != nil {
			t.Fatal(err)
		}
		saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
		if got, want := sawGroups(saw), []string{"App.Admin", "g-eng", "g-ops"}; !slices.Equal(got, want) {
			t.Errorf("groups and roles both sent; X-Forwarded-Groups = %q, want %q", got, want)
		}
	})

	t.Run("saml", func(t *testing.T) {
		const entraGroupsURI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
		w := newSAMLWorld(t, "\t\t\tpreset entra\n\t\t\tjit\n\t\t\tmap groups "+entraGroupsURI+" "+entraRoleURI+"\n").start()
		u := samltest.Entra("ada", "ada-pw", samlPerson) // groups eng, admins
		u.Attributes[entraRoleURI] = []string{"App.Admin"}
		w.addUser(u)
		saw := newBrowser(t).samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
		if got, want := sawGroups(saw), []string{"App.Admin", "admins", "eng"}; !slices.Equal(got, want) {
			t.Errorf("groups and roles both sent; X-Forwarded-Groups = %q, want %q", got, want)
		}
	})
}
