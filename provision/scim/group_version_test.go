package scim_test

import (
	"testing"
)

// TestGroupVersionMovesWithItsMembers: a group's members are part of its
// representation, so every way its member list changes gives it a new
// version (ETag, meta.version): deleting a member user (which the store
// does, not a group write) as much as a PUT or PATCH of the group. A
// client's If-None-Match with the old ETag then gets the new document
// (200), not 304 for a list it does not have, and a PUT built on the old
// list with If-Match gets 412. A write to a member that leaves the member
// list as it was (deactivating them: a group shows only member IDs)
// leaves the group's version too.
func TestGroupVersionMovesWithItsMembers(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(e *env)
		members int // in the group after the change (ada and bob before)
	}{
		{"member user deleted", func(e *env) { e.must(204, "DELETE", "/Users/{{ada}}", "") }, 1},
		{"member removed by PATCH", func(e *env) {
			e.must(204, "PATCH", "/Groups/{{g}}", patchBody(`{"op":"remove","path":"members[value eq \"{{ada}}\"]"}`))
		}, 1},
		{"member removed by PUT", func(e *env) {
			e.must(200, "PUT", "/Groups/{{g}}", `{"displayName":"staff","members":[{"value":"{{bob}}"}]}`)
		}, 1},
		{"member added by PATCH", func(e *env) {
			e.vars["cy"] = e.must(201, "POST", "/Users", `{"userName":"cy"}`).body["id"].(string)
			e.must(204, "PATCH", "/Groups/{{g}}", patchBody(`{"op":"add","path":"members","value":[{"value":"{{cy}}"}]}`))
		}, 3},
		{"member deactivated", func(e *env) {
			e.must(200, "PATCH", "/Users/{{ada}}", patchBody(`{"op":"replace","path":"active","value":false}`))
		}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.vars["ada"] = e.must(201, "POST", "/Users", `{"userName":"ada"}`).body["id"].(string)
			e.vars["bob"] = e.must(201, "POST", "/Users", `{"userName":"bob"}`).body["id"].(string)
			e.vars["g"] = e.must(201, "POST", "/Groups",
				`{"displayName":"staff","members":[{"value":"{{ada}}"},{"value":"{{bob}}"}]}`).body["id"].(string)
			old := e.must(200, "GET", "/Groups/{{g}}", "").header.Get("ETag")

			c.change(e)

			cur := e.must(200, "GET", "/Groups/{{g}}", "")
			members, _ := cur.body["members"].([]any)
			if len(members) != c.members {
				t.Fatalf("members after the change: %v, want %d", members, c.members)
			}
			cond := e.doHeaders("GET", "/Groups/{{g}}", "", map[string]string{"If-None-Match": old})
			put := `{"displayName":"staff","members":[{"value":"{{bob}}"}]}`
			if c.members == 2 {
				// The member list did not change: the old ETag is current.
				if cond.status != 304 || cur.header.Get("ETag") != old {
					t.Errorf("If-None-Match %s: %d with ETag %s; want 304, the version unchanged", old, cond.status, cur.header.Get("ETag"))
				}
				return
			}
			if cond.status != 200 || cond.header.Get("ETag") == old || cond.header.Get("ETag") != cur.header.Get("ETag") {
				t.Errorf("If-None-Match %s after the member list changed: %d with ETag %q; want 200 with the new ETag %s",
					old, cond.status, cond.header.Get("ETag"), cur.header.Get("ETag"))
			}
			if r := e.doHeaders("PUT", "/Groups/{{g}}", put, map[string]string{"If-Match": old}); r.status != 412 {
				t.Errorf("PUT with If-Match %s (the version before the member list changed): %d, want 412", old, r.status)
			}
			e.must(200, "PUT", "/Groups/{{g}}", put)
		})
	}
}
