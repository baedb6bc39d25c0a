package scim_test

import (
	"context"
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestGroupMembershipAuditedPerMember: a group's own event holds only
// counts, so no event named the person a SCIM group write gave a group
// (a privilege) or took it from, and audit --user missed it. Now each
// member who joins or leaves, by create, PATCH, PUT or the group's
// deletion, gets a user.updated event of their own (reason scim, fields
// groups, the group and the change), in the group write's transaction.
func TestGroupMembershipAuditedPerMember(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	for _, name := range []string{"ada", "bob"} {
		e.vars[name] = e.must(201, "POST", "/Users", `{"userName":"`+name+`@example.com","externalId":"oid-`+name+`","active":true}`).body["id"].(string)
	}
	patch := func(op string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + op + `]}`
	}
	steps := []struct {
		name, method, path, body string
		want                     []string // user:change, in the order written
	}{
		{"create with ada", "POST", "/Groups", `{"displayName":"admins","members":[{"value":"{{ada}}"}]}`, []string{"ada:joined"}},
		{"add bob", "PATCH", "/Groups/{{gid}}", patch(`{"op":"add","path":"members","value":[{"value":"{{bob}}"}]}`), []string{"bob:joined"}},
		{"remove ada", "PATCH", "/Groups/{{gid}}", patch(`{"op":"remove","path":"members[value eq \"{{ada}}\"]"}`), []string{"ada:left"}},
		{"rename only", "PATCH", "/Groups/{{gid}}", patch(`{"op":"replace","path":"displayName","value":"admins-2"}`), nil},
		{"replace with ada", "PUT", "/Groups/{{gid}}", `{"displayName":"admins-2","members":[{"value":"{{ada}}"}]}`, []string{"ada:joined", "bob:left"}},
		{"delete", "DELETE", "/Groups/{{gid}}", "", []string{"ada:left"}},
	}
	seen := 0
	for _, st := range steps {
		r := e.do(st.method, st.path, st.body)
		if r.status >= 300 {
			t.Fatalf("%s: %d %s", st.name, r.status, r.raw)
		}
		if st.method == "POST" {
			e.vars["gid"] = r.body["id"].(string)
		}
		var got []string
		evs := e.audit()
		for _, ev := range evs[seen:] {
			change := ev.Detail["group_change"]
			if change == "" {
				continue
			}
			who := map[string]string{e.vars["ada"]: "ada", e.vars["bob"]: "bob"}[ev.UserID]
			got = append(got, who+":"+change)
			if ev.Type != store.EventUserUpdated || ev.Reason != account.BySCIM || ev.IdP != "entra" ||
				ev.Detail["fields"] != provision.FieldGroups || ev.Detail["group_id"] != e.vars["gid"] || len(ev.Detail) != 3 {
				t.Errorf("%s: member event %+v", st.name, ev)
			}
		}
		seen = len(evs)
		if !slices.Equal(got, st.want) {
			t.Errorf("%s: member events %v, want %v", st.name, got, st.want)
		}
	}
	// audit --user: each person's own trail says when they had the group.
	for name, want := range map[string]int{"ada": 4, "bob": 2} {
		var evs []store.Event
		err := e.db.View(context.Background(), func(tx store.Tx) (err error) {
			evs, err = tx.AuditEvents(store.AuditQuery{UserID: e.vars[name], Type: store.EventUserUpdated})
			return err
		})
		n := 0
		for _, ev := range evs {
			if ev.Detail["group_id"] == e.vars["gid"] {
				n++
			}
		}
		if err != nil || n != want {
			t.Errorf("%s's trail has %d events about the group (%v), want %d", name, n, err, want)
		}
	}
}
