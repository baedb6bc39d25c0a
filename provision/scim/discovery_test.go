package scim_test

import (
	"net/http"
	"strings"
	"testing"
)

// RFC 7644 4: a filter on a discovery endpoint SHOULD be 403, so that a
// client does not take the full answer for the entries that match.
func TestDiscoveryFilterForbidden(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	for _, p := range []string{"/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas",
		"/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"} {
		scimError(t, e.do("GET", p+"?filter="+q(`name eq "Nothing"`), ""), http.StatusForbidden, "")
	}
}

func TestDiscoveryEndpoints(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	r := e.must(200, "GET", "/ServiceProviderConfig", "")
	if at(r.body, "patch", "supported") != true || at(r.body, "filter", "supported") != true ||
		at(r.body, "bulk", "supported") != false || at(r.body, "authenticationSchemes", 0, "type") != "oauthbearertoken" {
		t.Errorf("ServiceProviderConfig: %s", r.raw)
	}
	r = e.must(200, "GET", "/ResourceTypes", "")
	if total(t, r) != 2 || at(r.body, "Resources", 0, "endpoint") != "/Users" ||
		at(r.body, "Resources", 0, "schemaExtensions", 0, "schema") != "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" {
		t.Errorf("ResourceTypes: %s", r.raw)
	}
	if r = e.must(200, "GET", "/ResourceTypes/Group", ""); r.body["schema"] != "urn:ietf:params:scim:schemas:core:2.0:Group" {
		t.Errorf("ResourceTypes/Group: %s", r.raw)
	}
	r = e.must(200, "GET", "/Schemas", "")
	if total(t, r) != 3 {
		t.Errorf("Schemas: %s", r.raw)
	}
	r = e.must(200, "GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "")
	if at(r.body, "attributes", 0, "name") != "userName" || at(r.body, "attributes", 0, "uniqueness") != "server" {
		t.Errorf("User schema: %.300s", r.raw)
	}
	scimError(t, e.do("GET", "/Schemas/urn:nope", ""), 404, "")
	scimError(t, e.do("GET", "/ResourceTypes/Nope", ""), 404, "")
}

// TestSchemaSaysWhichEmailIsUnique: /Schemas tells what the server keeps
// of emails.value, no more: a second user with another's primary address
// gets 409 uniqueness, one sharing a non-primary address does not, so the
// attribute (every value) keeps uniqueness "none" and its description
// says which address is unique. Before, nothing in /Schemas told a client
// to expect the 409.
func TestSchemaSaysWhichEmailIsUnique(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	s := e.must(200, "GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "")
	var value map[string]any
	for _, a := range s.body["attributes"].([]any) {
		if at(a, "name") == "emails" {
			for _, sub := range at(a, "subAttributes").([]any) {
				if at(sub, "name") == "value" {
					value = sub.(map[string]any)
				}
			}
		}
	}
	desc, _ := value["description"].(string)
	if value["uniqueness"] != "none" || !strings.Contains(desc, "primary") || !strings.Contains(desc, "409 uniqueness") ||
		!strings.Contains(desc, "other addresses are not checked") {
		t.Errorf("emails.value in /Schemas: %v; want uniqueness none and a description naming the one address kept unique", value)
	}
	e.must(201, "POST", "/Users", `{"userName":"a@example.com","emails":[{"value":"shared@example.com","primary":true},{"value":"home@example.com"}]}`)
	scimError(t, e.do("POST", "/Users", `{"userName":"b@example.com","emails":[{"value":"SHARED@example.com","primary":true}]}`), 409, "uniqueness")
	e.must(201, "POST", "/Users", `{"userName":"c@example.com","emails":[{"value":"c@example.com","primary":true},{"value":"home@example.com"}]}`)
}

func TestProtocolErrors(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
	tests := []struct {
		name, method, path, body, contentType string
		status                                int
		scimType                              string
	}{
		{"unknown resource", "GET", "/Widgets", "", "", 404, ""},
		{"too deep", "GET", "/Users/{{id}}/extra", "", "", 404, ""},
		{"base path is a whole segment", "GET", "Users", "", "", 404, ""}, // /scim/v2Users
		{"bulk", "POST", "/Bulk", "{}", "", 501, ""},
		{"method on collection", "DELETE", "/Users", "", "", 405, ""},
		{"method on resource", "POST", "/Users/{{id}}", "{}", "", 405, ""},
		{"discovery is read-only", "POST", "/Schemas", "{}", "", 405, ""},
		{"not JSON", "POST", "/Users", "userName=x", "application/x-www-form-urlencoded", 415, ""},
		{"body not an object", "POST", "/Users", `["x"]`, "", 400, "invalidSyntax"},
		{"trailing data", "POST", "/Users", `{"userName":"x"} {}`, "", 400, "invalidSyntax"},
		{"too large", "POST", "/Users", `{"userName":"x","title":"` + strings.Repeat("a", 1<<20) + `"}`, "", 413, ""},
		{"userName missing", "POST", "/Users", `{"active":true}`, "", 400, "invalidValue"},
		{"userName not a string", "POST", "/Users", `{"userName":7}`, "", 400, "invalidValue"},
		{"emails not a list", "POST", "/Users", `{"userName":"x","emails":{"value":"a@b"}}`, "", 400, "invalidValue"},
		{"PUT without userName", "PUT", "/Users/{{id}}", `{"active":true}`, "", 400, "invalidValue"},
		{"group without name", "POST", "/Groups", `{"members":[]}`, "", 400, "invalidValue"},
		{"group member without value", "POST", "/Groups", `{"displayName":"g","members":[{"display":"x"}]}`, "", 400, "invalidValue"},
		{"unknown group", "GET", "/Groups/nope", "", "", 404, ""},
		{"sort", "GET", "/Groups?sortBy=displayName", "", "", 400, "invalidValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.srv.URL+"/scim/v2"+e.expand(tt.path), strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+entraToken)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			e.t = t
			scimError(t, e.read(res), tt.status, tt.scimType)
		})
	}
	e.t = t
	// Outside the base path: a SCIM 404, after authentication.
	req, _ := http.NewRequest("GET", e.srv.URL+"/other/Users", nil)
	req.Header.Set("Authorization", "Bearer "+entraToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("outside the base path: %d", res.StatusCode)
	}
	// The user survived all of it.
	if u := e.user("{{id}}"); u.UserName != "ada@example.com" {
		t.Errorf("user changed: %+v", u)
	}
}

// TestBasePathAsCaddyMatchesIt: a path Caddy's `handle /scim/v2/*` sends
// here (its path matcher takes any letter case and merges slashes) is
// served as the resource it names, not answered 404; /scim/v2Users is
// still outside the base path.
func TestBasePathAsCaddyMatchesIt(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	id := e.must(201, "POST", "/Users", baseUser).body["id"].(string)
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/scim/v2/Users/" + id, 200},
		{"/SCIM/v2/Users/" + id, 200},
		{"//scim/v2/Users/" + id, 200},
		{"/scim//v2/Users/" + id, 200},
		{"/scim/v2//Users/" + id, 200},
		{"/scim/v2Users/" + id, 404},
		{"/scim/v3/Users/" + id, 404},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+entraToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := e.read(res)
		if r.status != tc.status || tc.status == 200 && r.body["id"] != id {
			t.Errorf("GET %s: %d %s, want %d", tc.path, r.status, r.raw, tc.status)
		}
	}
}
