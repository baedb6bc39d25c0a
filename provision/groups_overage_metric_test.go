package provision_test

import (
	"context"
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestObserveGroupsOverage: a sign-in whose groups the IdP sent as a
// pointer (Entra's overage) is reported to metrics as "overage", besides
// what else it did, so that it can be alerted on (jit_total{action=
// "overage"}): the user's groups were kept, stale or empty, and only a log
// line and an audit event said so. A denied sign-in, which neither logs
// nor audits the overage, reports its denial only.
func TestObserveGroupsOverage(t *testing.T) {
	e := newEnv(t)
	withGroups := full("ada")
	withGroups.Groups, withGroups.HasGroups = []string{"g1", "g2"}, true
	overage := full("ada")
	overage.GroupsOverage = true
	newcomer := full("grace")
	newcomer.GroupsOverage = true
	stranger := full("eve")
	stranger.Email, stranger.GroupsOverage = "eve@elsewhere.org", true
	domains := provision.Rules{JIT: true, AllowedDomains: []string{"example.com"}}

	type action struct{ action, reason string }
	steps := []struct {
		name  string
		rules provision.Rules
		prof  mapping.Profile
		want  []action
	}{
		{"first sign-in, groups sent", jit, withGroups, []action{{"create", ""}}},
		{"later sign-in, overage", jit, overage, []action{{"overage", ""}}},
		{"later sign-in, groups sent, unchanged", jit, withGroups, nil},
		{"first sign-in, overage", jit, newcomer, []action{{"create", ""}, {"overage", ""}}},
		{"denied sign-in, overage", domains, stranger, []action{{"deny", provision.ReasonDomainNotAllowed}}},
	}
	for _, s := range steps {
		e.now = e.now.Add(1e9)
		var res *provision.Result
		err := e.db.Update(context.Background(), func(tx store.Tx) (err error) {
			res, err = provision.Apply(tx, "entra", s.rules, s.prof, true, e.now)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var got []action
		res.Observe(func(a, reason string) { got = append(got, action{a, reason}) })
		if !slices.Equal(got, s.want) {
			t.Errorf("%s: observed %v, want %v", s.name, got, s.want)
		}
	}
}
