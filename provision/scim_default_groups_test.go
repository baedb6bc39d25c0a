package provision_test

import (
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestDefaultGroupsOfSCIMUsers: default_groups are for users JIT creates.
// A sign-in replaces the token's part of a SCIM user's groups (update
// force), and that part must not bring the defaults to a user SCIM
// created (a `deny group jit-guests` would lock the directory's people
// out), while a JIT user SCIM adopted keeps the defaults JIT gave them.
func TestDefaultGroupsOfSCIMUsers(t *testing.T) {
	rules := provision.Rules{JIT: true, DefaultGroups: []string{"jit-guests"}}
	signIn := func(e *env, sub string) []string {
		prof := full(sub)
		prof.Groups, prof.HasGroups = []string{"g-eng"}, true
		return e.user(e.mustLogin("entra", rules, prof).ID).Groups
	}

	e := newEnv(t)
	e.seed(scimUser("oid-1"))
	if got := signIn(e, "oid-1"); slices.Contains(got, "jit-guests") || !slices.Contains(got, "g-eng") {
		t.Errorf("a user SCIM created has %q after signing in, want the token's groups without default_groups", got)
	}

	e = newEnv(t)
	adopted := e.mustLogin("entra", rules, full("oid-2")) // JIT: gets jit-guests
	rec := e.user(adopted.ID)
	rec.Source = store.SourceSCIM // SCIM's first write adopts them
	e.seed(rec)
	if got := signIn(e, "oid-2"); !slices.Contains(got, "jit-guests") || !slices.Contains(got, "g-eng") {
		t.Errorf("a JIT user SCIM adopted has %q after signing in, want the token's groups and the default JIT gave", got)
	}
}
