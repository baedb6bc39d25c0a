package provision_test

import (
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestDefaultGroupsOfSCIMUsers: default_groups are for users JIT owns. A
// sign-in replaces the token's part of a SCIM user's groups (update
// force), and that part brings no defaults: not to a user SCIM created (a
// `deny group jit-guests` would lock the directory's people out), nor to a
// JIT user SCIM adopted, and a token group named like a default goes when
// the IdP removes it.
func TestDefaultGroupsOfSCIMUsers(t *testing.T) {
	rules := provision.Rules{JIT: true, DefaultGroups: []string{"jit-guests"}}
	signIn := func(e *env, sub string, groups ...string) []string {
		prof := full(sub)
		prof.Groups, prof.HasGroups = groups, true
		return e.user(e.mustLogin("entra", rules, prof).ID).Groups
	}

	e := newEnv(t)
	e.seed(scimUser("oid-1"))
	if got := signIn(e, "oid-1", "g-eng"); !slices.Equal(got, []string{"g-eng"}) {
		t.Errorf("a user SCIM created has %q after signing in, want the token's groups without default_groups", got)
	}
	if got := signIn(e, "oid-1", "g-eng", "jit-guests"); !slices.Contains(got, "jit-guests") {
		t.Errorf("the token's own jit-guests group: %q", got)
	}
	if got := signIn(e, "oid-1", "g-eng"); slices.Contains(got, "jit-guests") {
		t.Errorf("the IdP removed the token's jit-guests group, still %q", got)
	}

	e = newEnv(t)
	adopted := e.mustLogin("entra", rules, full("oid-2")) // JIT: gets jit-guests
	rec := e.user(adopted.ID)
	rec.Source = store.SourceSCIM // SCIM's first write adopts them
	e.seed(rec)
	if got := signIn(e, "oid-2", "g-eng"); !slices.Equal(got, []string{"g-eng"}) {
		t.Errorf("a JIT user SCIM adopted has %q after signing in, want the token's groups only", got)
	}
}
