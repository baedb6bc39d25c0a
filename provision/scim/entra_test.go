package scim_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// The request bodies below follow Microsoft's "Develop a SCIM endpoint"
// tutorial (learn.microsoft.com, use-scim-to-provision-users-and-groups,
// "User Operations" and "Group Operations") and its known-issues page for
// the SCIM 2.0 compliance changes (Add/Replace capitalised, "False"
// strings, path-less values with dotted and URN keys).

const entraCreateUser = `{
	"schemas": [
		"urn:ietf:params:scim:schemas:core:2.0:User",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
	"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
	"active": true,
	"emails": [{
		"primary": true,
		"type": "work",
		"value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
	}],
	"meta": {
		"resourceType": "User"
	},
	"name": {
		"formatted": "givenName familyName",
		"familyName": "familyName",
		"givenName": "givenName"
	},
	"roles": []
}`

const entraCreateGroup = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
		"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
	"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
	"displayName": "displayName",
	"meta": {
		"resourceType": "Group"
	}
}`

func TestEntraSequence(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	var session1 string
	replay(t, e, []step{
		{name: "test connection: query a random userName", method: "GET",
			path: "/Users?filter=" + q(`userName eq "Test_User_00aa00aa-00aa-00aa-00aa-00aa00aa00aa"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if n := total(t, r); n != 0 {
					t.Errorf("totalResults = %d", n)
				}
				if !strings.Contains(r.raw, `"Resources":[]`) {
					t.Errorf("empty result must carry Resources: [] : %s", r.raw)
				}
			}},
		{name: "create user", method: "POST", path: "/Users", body: entraCreateUser, status: 201,
			save: map[string][]any{"user": {"id"}},
			check: func(t *testing.T, e *env, r resp) {
				id := r.body["id"].(string)
				loc := r.header.Get("Location")
				if loc != e.srv.URL+"/scim/v2/Users/"+id || at(r.body, "meta", "location") != loc {
					t.Errorf("Location %q, meta.location %v", loc, at(r.body, "meta", "location"))
				}
				for _, k := range []string{"resourceType", "created", "lastModified", "version"} {
					if at(r.body, "meta", k) == nil {
						t.Errorf("meta.%s missing", k)
					}
				}
				if at(r.body, "name", "formatted") != "givenName familyName" || at(r.body, "emails", 0, "type") != "work" ||
					at(r.body, "active") != true || at(r.body, "externalId") != "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" {
					t.Errorf("created user reads back differently: %s", r.raw)
				}
				u := e.user(id)
				if u.Source != store.SourceSCIM || u.IdP != "entra" || u.FirstName != "givenName" || u.LastName != "familyName" ||
					u.Email != "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com" || !u.Active {
					t.Errorf("stored %+v", u)
				}
			}},
		{name: "get user", method: "GET", path: "/Users/{{user}}", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["userName"] != "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1" {
					t.Errorf("got %s", r.raw)
				}
				if g, ok := r.body["groups"].([]any); !ok || len(g) != 0 {
					t.Errorf("groups = %v", r.body["groups"])
				}
			}},
		{name: "get user by query, other case", method: "GET",
			path: "/Users?filter=" + q(`userName eq "test_user_AB6490EE-1e48-479e-a20b-2d77186b5dd1"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if n := total(t, r); n != 1 || at(r.body, "Resources", 0, "id") != e.vars["user"] {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "match by externalId (objectId)", method: "GET",
			path: "/Users?filter=" + q(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "externalId is case-exact", method: "GET",
			path: "/Users?filter=" + q(`externalId eq "0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 0 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "match by work email", method: "GET",
			path: "/Users?filter=" + q(`emails[type eq "work"].value eq "test_user_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "create the same user again", method: "POST", path: "/Users", body: entraCreateUser, status: 409,
			check: func(t *testing.T, e *env, r resp) { scimError(t, r, 409, "uniqueness") }},
		{name: "update multi-valued properties", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
				{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
			]}`,
			check: func(t *testing.T, e *env, r resp) {
				if at(r.body, "emails", 0, "value") != "updatedEmail@microsoft.com" || at(r.body, "name", "familyName") != "updatedFamilyName" ||
					at(r.body, "name", "givenName") != "givenName" || at(r.body, "name", "formatted") != "givenName familyName" {
					t.Errorf("got %s", r.raw)
				}
				if u := e.user("{{user}}"); u.Email != "updatedEmail@microsoft.com" || u.LastName != "updatedFamilyName" {
					t.Errorf("stored %+v", u)
				}
			}},
		{name: "update single-valued property", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["userName"] != "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "old userName no longer matches", method: "GET",
			path: "/Users?filter=" + q(`userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 0 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "path-less Add with dotted and URN keys", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Add", "value": {
				"displayName": "Updated Display",
				"name.givenName": "Augusta",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Engineering",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "1701"}}]}`,
			check: func(t *testing.T, e *env, r resp) {
				ext := "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
				if r.body["displayName"] != "Updated Display" || at(r.body, "name", "givenName") != "Augusta" ||
					at(r.body, ext, "department") != "Engineering" || at(r.body, ext, "employeeNumber") != "1701" {
					t.Errorf("got %s", r.raw)
				}
				if sch, _ := r.body["schemas"].([]any); !slices.Contains(sch, any(ext)) {
					t.Errorf("schemas %v lack the enterprise extension", sch)
				}
			}},
		{name: "manager as Entra sends it", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
				"value": "2819c223-7f76-453a-919d-413861904646"}]}`,
			check: func(t *testing.T, e *env, r resp) {
				// RFC 7643 4.3: manager is complex; the bare ID Entra sends
				// is its value, which is where clients read it.
				if at(r.body, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "manager", "value") != "2819c223-7f76-453a-919d-413861904646" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "the manager reads back as a complex value", method: "GET",
			path: "/Users/{{user}}?attributes=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				m, ok := at(r.body, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "manager").(map[string]any)
				if !ok || len(m) != 1 || m["value"] != "2819c223-7f76-453a-919d-413861904646" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "user signs in (setup)", method: "GET", path: "/Users/{{user}}", status: 200,
			check: func(t *testing.T, e *env, r resp) { session1 = e.signIn("{{user}}") }},
		{name: "disable user", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"Operations": [{"op": "Replace", "path": "active", "value": false}],
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["active"] != false || e.user("{{user}}").Active {
					t.Errorf("got %s", r.raw)
				}
				if _, err := e.sessions.Resolve(context.Background(), session1); !errors.Is(err, session.ErrNoSession) {
					t.Errorf("session still valid after deactivation: %v", err)
				}
			}},
		{name: "inactive user still readable", method: "GET",
			path: "/Users?filter=" + q(`userName eq "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 || at(r.body, "Resources", 0, "active") != false {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "reactivate with a string boolean", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "active", "value": "True"}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["active"] != true || !e.user("{{user}}").Active {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "create a second user", method: "POST", path: "/Users", status: 201, save: map[string][]any{"user2": {"id"}},
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"externalId":"oid-2","userName":"second@testuser.com","active":true}`},
		{name: "create group", method: "POST", path: "/Groups", body: entraCreateGroup, status: 201,
			save: map[string][]any{"group": {"id"}},
			check: func(t *testing.T, e *env, r resp) {
				if m, ok := r.body["members"].([]any); !ok || len(m) != 0 || r.body["displayName"] != "displayName" {
					t.Errorf("got %s", r.raw)
				}
				if r.header.Get("Location") == "" || at(r.body, "meta", "resourceType") != "Group" {
					t.Errorf("Location/meta missing: %s", r.raw)
				}
			}},
		{name: "get group without members", method: "GET", path: "/Groups/{{group}}?excludedAttributes=members", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if _, ok := r.body["members"]; ok || r.body["id"] != e.vars["group"] {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "get group by displayName", method: "GET",
			path: "/Groups?excludedAttributes=members&filter=" + q(`displayName eq "displayName"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 || at(r.body, "Resources", 0, "members") != nil {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "rename group", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}`},
		{name: "add members", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Add", "path": "members", "value": [
				{"$ref": null, "value": "{{user}}"}, {"$ref": null, "value": "{{user2}}"}]}]}`,
			check: func(t *testing.T, e *env, r resp) {
				for _, id := range []string{"{{user}}", "{{user2}}"} {
					if g := e.user(id).Groups; !slices.Equal(g, []string{"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}) {
						t.Errorf("%s Groups = %v", id, g)
					}
				}
			}},
		{name: "user shows the group", method: "GET", path: "/Users/{{user}}", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if at(r.body, "groups", 0, "value") != e.vars["group"] ||
					at(r.body, "groups", 0, "display") != "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "remove one member (legacy value list)", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "{{user}}"}]}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if g := e.user("{{user}}").Groups; len(g) != 0 {
					t.Errorf("removed member keeps %v", g)
				}
				if g := e.user("{{user2}}").Groups; len(g) != 1 {
					t.Errorf("the member not listed was removed too: %v", g)
				}
			}},
		{name: "group has only the other member", method: "GET", path: "/Groups/{{group}}", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if m, _ := r.body["members"].([]any); len(m) != 1 || at(m, 0, "value") != e.vars["user2"] {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "delete group", method: "DELETE", path: "/Groups/{{group}}", status: 204,
			check: func(t *testing.T, e *env, r resp) {
				if g := e.user("{{user2}}").Groups; len(g) != 0 {
					t.Errorf("deleted group still in Groups: %v", g)
				}
			}},
		{name: "deleted group is gone", method: "GET", path: "/Groups/{{group}}", status: 404},
		{name: "delete user", method: "DELETE", path: "/Users/{{user}}", status: 204,
			check: func(t *testing.T, e *env, r resp) {
				if r.raw != "" {
					t.Errorf("204 with a body: %s", r.raw)
				}
			}},
		{name: "deleted user is gone", method: "GET", path: "/Users/{{user}}", status: 404,
			check: func(t *testing.T, e *env, r resp) { scimError(t, r, 404, "") }},
		{name: "deleted user no longer matches", method: "GET",
			path: "/Users?filter=" + q(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 0 {
					t.Errorf("got %s", r.raw)
				}
			}},
	})

	// The trail: creates, updates, the deactivation with its revocation,
	// the reactivation, group changes and the deletion.
	var types []string
	for _, ev := range e.audit() {
		if !slices.Contains(types, ev.Type) {
			types = append(types, ev.Type)
		}
	}
	for _, want := range []string{store.EventUserCreated, store.EventUserUpdated, store.EventUserDeactivated,
		store.EventSessionRevoked, store.EventUserActivated, store.EventGroupCreated, store.EventGroupUpdated,
		store.EventGroupDeleted, store.EventUserDeleted} {
		if !slices.Contains(types, want) {
			t.Errorf("no %s audit event (have %v)", want, types)
		}
	}
}

// Entra mixes value-filter paths with plain and dotted ones among the keys
// of one path-less value when several mapped attributes change at once.
func TestEntraPathlessValueWithFilterKey(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	replay(t, e, []step{
		{name: "create user", method: "POST", path: "/Users", body: baseUser, status: 201,
			save: map[string][]any{"user": {"id"}}},
		{name: "path-less Replace with a filtered key", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {
				"displayName": "Ada L",
				"emails[type eq \"work\"].value": "ada.new@example.com",
				"name.givenName": "Augusta"}}]}`},
		{name: "all three changes read back", method: "GET", path: "/Users/{{user}}", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["displayName"] != "Ada L" || at(r.body, "name", "givenName") != "Augusta" ||
					at(r.body, "name", "familyName") != "Lovelace" {
					t.Errorf("got %s", r.raw)
				}
				if em, _ := r.body["emails"].([]any); len(em) != 1 || at(em, 0, "value") != "ada.new@example.com" ||
					at(em, 0, "type") != "work" || at(em, 0, "primary") != true {
					t.Errorf("emails = %v", r.body["emails"])
				}
				if u := e.user("{{user}}"); u.Email != "ada.new@example.com" {
					t.Errorf("the gateway signs in %q", u.Email)
				}
			}},
	})
}
