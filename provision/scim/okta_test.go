package scim_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// The request bodies below follow Okta's SCIM 2.0 protocol reference
// (developer.okta.com, "SCIM 2.0 Protocol": Create the user, Retrieve
// specific users, Update a specific user (PUT), Update a specific user
// (PATCH) for deactivation, and the Groups operations).

const oktaCreateUser = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	"userName": "test.user@okta.local",
	"name": {
		"givenName": "Test",
		"familyName": "User"
	},
	"emails": [{
		"primary": true,
		"value": "test.user@okta.local",
		"type": "work"
	}],
	"displayName": "Test User",
	"locale": "en-US",
	"externalId": "00ujl29u0le5T6Aj10h7",
	"groups": [],
	"password": "1mz050nq",
	"active": true
}`

// oktaPut is Okta's full-replace body; active is a parameter because
// Okta deactivates through PUT as well as PATCH.
func oktaPut(active bool) string {
	return fmt.Sprintf(`{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	"id": "{{user}}",
	"userName": "test.user@okta.local",
	"name": {
		"givenName": "Another",
		"middleName": "Test",
		"familyName": "User"
	},
	"emails": [{
		"primary": true,
		"value": "test.user@okta.local",
		"type": "work"
	}],
	"displayName": "Another Test User",
	"locale": "en-US",
	"externalId": "00ujl29u0le5T6Aj10h7",
	"groups": [],
	"active": %t,
	"meta": {
		"resourceType": "User",
		"created": "2025-06-01T09:00:01Z",
		"lastModified": "2025-06-01T09:00:01Z"
	}
}`, active)
}

func TestOktaSequence(t *testing.T) {
	e := newEnv(t, "okta", oktaToken)
	var cookie string
	resolves := func(t *testing.T, want bool) {
		t.Helper()
		_, err := e.sessions.Resolve(context.Background(), cookie)
		if got := err == nil; got != want {
			t.Errorf("session valid = %v (%v), want %v", got, err, want)
		}
		if err != nil && !errors.Is(err, session.ErrNoSession) {
			t.Errorf("resolve: %v", err)
		}
	}
	replay(t, e, []step{
		{name: "test connector configuration", method: "GET", path: "/Users?startIndex=1&count=1", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 0 || r.body["startIndex"] != float64(1) {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "determine if the user exists", method: "GET",
			path: "/Users?filter=" + q(`userName eq "test.user@okta.local"`) + "&startIndex=1&count=100", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 0 || !strings.Contains(r.raw, `"Resources":[]`) {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "create the user", method: "POST", path: "/Users", body: oktaCreateUser, status: 201,
			save: map[string][]any{"user": {"id"}},
			check: func(t *testing.T, e *env, r resp) {
				if strings.Contains(r.raw, "1mz050nq") || r.body["password"] != nil {
					t.Errorf("password in the response: %s", r.raw)
				}
				u := e.user(r.body["id"].(string))
				if strings.Contains(string(u.SCIMAttributes), "1mz050nq") {
					t.Errorf("password stored: %s", u.SCIMAttributes)
				}
				if at(r.body, "locale") != "en-US" || r.body["displayName"] != "Test User" || u.ExternalID != "00ujl29u0le5T6Aj10h7" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "retrieve the user", method: "GET", path: "/Users/{{user}}", status: 200},
		{name: "the user exists now", method: "GET",
			path: "/Users?filter=" + q(`userName eq "test.user@okta.local"`) + "&startIndex=1&count=100", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "update the user (PUT)", method: "PUT", path: "/Users/{{user}}", body: oktaPut(true), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if at(r.body, "name", "givenName") != "Another" || at(r.body, "name", "middleName") != "Test" ||
					r.body["displayName"] != "Another Test User" || r.body["active"] != true {
					t.Errorf("got %s", r.raw)
				}
				cookie = e.signIn("{{user}}")
			}},
		{name: "deactivate (PATCH, path-less value)", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"active": false}}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["active"] != false || e.user("{{user}}").Active {
					t.Errorf("got %s", r.raw)
				}
				resolves(t, false)
			}},
		{name: "reactivate (PATCH)", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"active": true}}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["active"] != true {
					t.Errorf("got %s", r.raw)
				}
				cookie = e.signIn("{{user}}")
			}},
		{name: "deactivate (PUT active=false)", method: "PUT", path: "/Users/{{user}}", body: oktaPut(false), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["active"] != false || e.user("{{user}}").Active {
					t.Errorf("got %s", r.raw)
				}
				resolves(t, false)
			}},
		{name: "inactive user still retrievable", method: "GET", path: "/Users/{{user}}", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if r.body["active"] != false {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "reactivate (PUT active=true)", method: "PUT", path: "/Users/{{user}}", body: oktaPut(true), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if !e.user("{{user}}").Active {
					t.Error("not reactivated")
				}
			}},
		{name: "create a second user", method: "POST", path: "/Users", status: 201, save: map[string][]any{"user2": {"id"}},
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"second@okta.local","externalId":"00u2","active":true,
				"name":{"givenName":"Second","familyName":"User"},"emails":[{"primary":true,"value":"second@okta.local","type":"work"}]}`},
		{name: "create group", method: "POST", path: "/Groups", status: 201, save: map[string][]any{"group": {"id"}},
			body: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []}`},
		{name: "retrieve groups", method: "GET", path: "/Groups?startIndex=1&count=100", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 || at(r.body, "Resources", 0, "displayName") != "Test SCIMv2" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "find group by name", method: "GET", path: "/Groups?filter=" + q(`displayName eq "test scimv2"`) + "&startIndex=1&count=100", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "duplicate group name", method: "POST", path: "/Groups", status: 409,
			body:  `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "TEST SCIMv2", "members": []}`,
			check: func(t *testing.T, e *env, r resp) { scimError(t, r, 409, "uniqueness") }},
		{name: "update group name (id in the value)", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"id": "{{group}}", "displayName": "Test SCIMv2 renamed"}}]}`},
		{name: "add a member", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "add", "path": "members", "value": [{"value": "{{user2}}", "display": "second@okta.local"}]}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if g := e.user("{{user2}}").Groups; len(g) != 1 || g[0] != "Test SCIMv2 renamed" {
					t.Errorf("Groups = %v", g)
				}
			}},
		{name: "update membership: remove by filter, add another", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{"op": "remove", "path": "members[value eq \"{{user2}}\"]"},
				{"op": "add", "path": "members", "value": [{"value": "{{user}}", "display": "test.user@okta.local"}]}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if g := e.user("{{user2}}").Groups; len(g) != 0 {
					t.Errorf("removed member keeps %v", g)
				}
				if g := e.user("{{user}}").Groups; len(g) != 1 {
					t.Errorf("added member has %v", g)
				}
			}},
		{name: "group lists the member", method: "GET", path: "/Groups/{{group}}", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if m, _ := r.body["members"].([]any); len(m) != 1 || at(m, 0, "value") != e.vars["user"] {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "groups of a member by filter", method: "GET", path: "/Groups?filter=" + q(`members[value eq "{{user}}"]`), status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "replace the group (PUT)", method: "PUT", path: "/Groups/{{group}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
			"id": "{{group}}",
			"displayName": "Test SCIMv2",
			"members": [{"value": "{{user2}}", "display": "second@okta.local"}]}`,
			check: func(t *testing.T, e *env, r resp) {
				if g := e.user("{{user}}").Groups; len(g) != 0 {
					t.Errorf("replaced-out member keeps %v", g)
				}
				if g := e.user("{{user2}}").Groups; len(g) != 1 || g[0] != "Test SCIMv2" {
					t.Errorf("Groups = %v", g)
				}
			}},
		{name: "delete group", method: "DELETE", path: "/Groups/{{group}}", status: 204},
		{name: "list users, first page", method: "GET", path: "/Users?startIndex=1&count=1", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				if total(t, r) != 2 || len(r.body["Resources"].([]any)) != 1 {
					t.Errorf("got %s", r.raw)
				}
				e.vars["page1"] = at(r.body, "Resources", 0, "id").(string)
			}},
		{name: "list users, second page", method: "GET", path: "/Users?startIndex=2&count=1", status: 200,
			check: func(t *testing.T, e *env, r resp) {
				id, _ := at(r.body, "Resources", 0, "id").(string)
				if total(t, r) != 2 || id == "" || id <= e.vars["page1"] || r.body["startIndex"] != float64(2) {
					t.Errorf("page 2 after %s: %s", e.vars["page1"], r.raw)
				}
			}},
	})
	if u := e.user("{{user}}"); u.Source != store.SourceSCIM || u.IdP != "okta" {
		t.Errorf("stored %+v", u)
	}
}
