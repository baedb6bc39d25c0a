package provision_test

import (
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestDefaultGroupsFollowTheConfigAtSignIns: README's default_groups are
// given to the users JIT creates "and at their sign-ins" (update force),
// so a change of the line reaches every such user at their next sign-in,
// whether the IdP sends a groups claim, none (Google, a generic IdP not set
// up to send groups) or an overage pointer: a default the operator removed
// goes, a new one comes, and the groups the token gave last are kept when
// it sent none this time. The user records which of their groups the
// defaults gave (store.User.DefaultGroups), on both backends; a user
// stored before that was recorded keeps what they had (their defaults
// cannot be told from the rest) and gets the new defaults. A user SCIM
// took over loses the recorded defaults at their next sign-in
// (docs/operations.md), and a SCIM group named like a default neither
// takes the default with it when the user leaves it nor is lost when the
// default goes. Each change of the groups is one the sign-in reports
// (Result.Changed "groups"), which forgets the user's open sessions
// (signin.changedUsers) as any other change of their groups does.
func TestDefaultGroupsFollowTheConfigAtSignIns(t *testing.T) {
	const (
		sent = iota
		none
		overage
	)
	type step struct {
		before   func(e *env, userID string) // a write between sign-ins (SCIM's)
		defaults []string
		claim    int
		token    []string // the groups claim, when sent (or before the overage pointer)
		want     []string
		changed  bool // the sign-in reports a change of the groups
	}
	adopt := func(e *env, id string) { // SCIM's first write to a JIT user
		u := e.user(id)
		u.Source = store.SourceSCIM
		e.seed(u)
	}
	scimGroup := func(members ...bool) func(e *env, id string) {
		return func(e *env, id string) {
			e.put(func(tx store.Tx) error {
				g := &store.Group{ID: "grp-staff", IdP: "google", DisplayName: "staff"}
				if old, err := tx.Group(g.ID); err == nil {
					g = old
				}
				g.Members = nil
				if members[0] {
					g.Members = []string{id}
				}
				return tx.PutGroup(g)
			})
		}
	}
	legacy := func(e *env, _ string) { // written by a build that did not record the defaults
		e.seed(&store.User{Email: "s@example.com", FirstName: "Ada", LastName: "Lovelace", Groups: []string{"admins", "eng"},
			Active: true, Source: store.SourceJIT, Links: []store.Link{{IdP: "google", Subject: "s"}},
			IdP: "google", ExternalID: "s", Created: t0, Updated: t0})
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"no groups claim (Google)", []step{
			{defaults: []string{"admins"}, claim: none, want: []string{"admins"}},
			{defaults: []string{"staff"}, claim: none, want: []string{"staff"}, changed: true},
			{defaults: []string{"staff", "admins"}, claim: none, want: []string{"admins", "staff"}, changed: true},
			{claim: none, want: nil, changed: true},
		}},
		{"groups claim sent", []step{
			{defaults: []string{"admins"}, claim: sent, token: []string{"eng"}, want: []string{"admins", "eng"}},
			{defaults: []string{"staff"}, claim: sent, token: []string{"eng"}, want: []string{"eng", "staff"}, changed: true},
		}},
		{"overage keeps the token's last groups", []step{
			{defaults: []string{"admins"}, claim: sent, token: []string{"g-1"}, want: []string{"admins", "g-1"}},
			{defaults: []string{"staff"}, claim: overage, want: []string{"g-1", "staff"}, changed: true},
			{defaults: []string{"staff"}, claim: overage, want: []string{"g-1", "staff"}},
			{claim: none, want: []string{"g-1"}, changed: true},
		}},
		{"overage at the first sign-in", []step{
			{defaults: []string{"admins"}, claim: overage, want: []string{"admins"}},
			{defaults: []string{"staff"}, claim: overage, want: []string{"staff"}, changed: true},
		}},
		{"a user stored before the defaults were recorded", []step{
			{before: legacy, defaults: []string{"staff"}, claim: none, want: []string{"admins", "eng", "staff"}, changed: true},
			{claim: none, want: []string{"admins", "eng"}, changed: true},
		}},
		{"SCIM took the user over", []step{
			{defaults: []string{"admins"}, claim: none, want: []string{"admins"}},
			{before: adopt, defaults: []string{"admins"}, claim: none, want: nil, changed: true},
		}},
		{"a SCIM group named like a default", []step{
			{defaults: []string{"staff"}, claim: none, want: []string{"staff"}},
			// The user joins and leaves SCIM's staff: the default stays.
			{before: func(e *env, id string) {
				scimGroup(true)(e, id)
				scimGroup(false)(e, id)
				if got := e.user(id).Groups; !slices.Equal(got, []string{"staff"}) {
					t.Errorf("after leaving the SCIM group staff: groups %q, want the default staff kept", got)
				}
			}, defaults: []string{"staff"}, claim: none, want: []string{"staff"}},
			// Back in SCIM's staff, the default goes: the SCIM group stays.
			{before: scimGroup(true), claim: none, want: []string{"staff"}},
			{before: scimGroup(false), claim: none, want: nil},
		}},
	}
	for _, be := range backendtest.All() {
		for _, tt := range tests {
			t.Run(be.Name+"/"+tt.name, func(t *testing.T) {
				e := newEnvOn(t, be.Open(t))
				var id, wrote string
				for i, s := range tt.steps {
					if s.before != nil {
						s.before(e, id)
						if id == "" { // the step wrote the user
							u, err := e.byLink("google", "s")
							if err != nil {
								t.Fatal(err)
							}
							wrote = u.ID
						}
					}
					prof := full("s")
					switch s.claim {
					case sent:
						prof.Groups, prof.HasGroups = s.token, true
					case overage:
						prof.HasGroups, prof.GroupsOverage = true, true
					}
					e.now = e.now.Add(60e9)
					var res *provision.Result
					e.put(func(tx store.Tx) (err error) {
						res, err = provision.Apply(tx, "google", provision.Rules{JIT: true, DefaultGroups: s.defaults}, prof, true, e.now)
						return err
					})
					if res.User == nil {
						t.Fatalf("sign-in %d: not signed in: %+v", i, res)
					}
					if wrote != "" && res.User.ID != wrote {
						t.Fatalf("sign-in %d signed in as %s, not the user the step wrote, %s", i, res.User.ID, wrote)
					}
					id = res.User.ID
					if got := e.user(id).Groups; !slices.Equal(got, s.want) {
						t.Errorf("sign-in %d under default_groups %q: groups %q, want %q", i, s.defaults, got, s.want)
					}
					if changed := !res.Created && slices.Contains(res.Changed, provision.FieldGroups); changed != s.changed {
						t.Errorf("sign-in %d reports a change of the groups: %v, want %v (%q)", i, changed, s.changed, res.Changed)
					}
				}
			})
		}
	}
}
