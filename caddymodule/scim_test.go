package caddymodule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/jsonwalk"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/store"
)

// SCIM through a real Caddy: the sso_scim directive on its own site, the
// bearer tokens from the environment, the same store and sessions as the
// sso handler. The handler-level tables of every quirk live in
// provision/scim; here each IdP's documented sequence runs once end to end
// over HTTP, and SCIM meets real OIDC sign-ins.

// Tokens as the environment hands them to Caddy ({env.…} placeholders).
const (
	scimTokenEntra = "entra-caddy-token-0123456789abcdef"
	scimTokenOkta  = "okta-caddy-token-fedcba9876543210"
	scimTokenTest  = "test-caddy-token-0011223344556677"
)

// scimClient speaks SCIM to a running Caddy with one bearer token.
type scimClient struct {
	t     *testing.T
	base  string // http://127.0.0.1:port/scim/v2
	token string
	vars  map[string]string
}

func newSCIMClient(t *testing.T, site, token string) *scimClient {
	return &scimClient{t: t, base: site + "/scim/v2", token: token, vars: map[string]string{}}
}

type scimResp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

var scimVar = regexp.MustCompile(`\{\{(\w+)\}\}`)

// expand replaces {{name}} with a value saved by an earlier step.
func (c *scimClient) expand(s string) string {
	return scimVar.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := c.vars[m[2:len(m)-2]]
		if !ok {
			c.t.Fatalf("no saved value %s", m)
		}
		return v
	})
}

// do sends one request; path is relative to /scim/v2, and path and body
// may hold {{placeholders}}.
func (c *scimClient) do(method, path, body string) scimResp {
	c.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+c.expand(path), strings.NewReader(c.expand(body)))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := scimResp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			c.t.Fatalf("%s %s: not a JSON object (%v): %s", method, path, err, raw)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/scim+json" {
			c.t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	return r
}

func (c *scimClient) must(want int, method, path, body string) scimResp {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, c.expand(path), r.status, want, r.raw)
	}
	return r
}

// scimStep is one request of a replayed provisioning sequence.
type scimStep struct {
	name         string
	method, path string
	body         string
	status       int
	save         map[string][]any // name -> at() path of a string to keep as {{name}}
	check        func(t *testing.T, r scimResp)
}

// replaySCIM runs the steps in order, each a subtest; the first failure
// stops the sequence, since later steps build on it.
func replaySCIM(t *testing.T, c *scimClient, steps []scimStep) {
	t.Helper()
	defer func() { c.t = t }()
	for i, s := range steps {
		ok := t.Run(fmt.Sprintf("%02d %s", i+1, s.name), func(t *testing.T) {
			c.t = t
			r := c.must(s.status, s.method, s.path, s.body)
			for name, p := range s.save {
				v, ok := at(r.body, p...).(string)
				if !ok || v == "" {
					t.Fatalf("no string at %v to save as %s: %s", p, name, r.raw)
				}
				c.vars[name] = v
			}
			if s.check != nil {
				s.check(t, r)
			}
		})
		if !ok {
			t.FailNow()
		}
	}
}

// at is jsonwalk.At.
func at(v any, path ...any) any { return jsonwalk.At(v, path...) }

// totalResults checks a list response's shape and returns its total.
func totalResults(t *testing.T, r scimResp) int {
	t.Helper()
	res, ok := r.body["Resources"].([]any)
	if !ok {
		t.Fatalf("Resources missing or not a list: %s", r.raw)
	}
	if n, _ := r.body["itemsPerPage"].(float64); int(n) != len(res) {
		t.Errorf("itemsPerPage %v for %d resources", r.body["itemsPerPage"], len(res))
	}
	n, _ := r.body["totalResults"].(float64)
	return int(n)
}

// scimError checks the SCIM error form: status as a string, scimType.
func scimError(t *testing.T, r scimResp, status int, scimType string) {
	t.Helper()
	if s, _ := r.body["status"].(string); s != fmt.Sprint(status) {
		t.Errorf("error status member %#v, want the string %q", r.body["status"], fmt.Sprint(status))
	}
	if got, _ := r.body["scimType"].(string); got != scimType {
		t.Errorf("scimType %q, want %q: %s", got, scimType, r.raw)
	}
}

// filter URL-encodes a SCIM filter as Entra and Okta send it.
func filter(f string) string { return "filter=" + url.PathEscape(f) }

// storedUser reads a user from the running Caddy's store.
func storedUser(t *testing.T, id string) *store.User {
	t.Helper()
	var u *store.User
	view(t, func(tx store.Tx) (err error) {
		u, err = tx.User(id)
		return err
	})
	return u
}

// scimProviders is the body of the global sso option for the sequence
// tests: IdPs named entra and okta (OIDC, against a local provider, since
// the tests only provision; the names are what SCIM is configured by).
func scimProviders(issuer string) string {
	var b strings.Builder
	for _, name := range []string{"entra", "okta"} {
		fmt.Fprintf(&b, "\t\tidp %s oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t\tscim\n\t\t}\n",
			name, issuer, clientID, clientSecret)
	}
	return b.String()
}

// startSCIMSite starts Caddy with the entra and okta IdPs and a site that
// has nothing but sso_scim, the tokens read from the environment; more are
// further lines of the sso_scim block (a second token of an IdP, say).
func startSCIMSite(t *testing.T, more ...string) *gateway {
	t.Helper()
	g, caddyfile := scimSite(t, more...)
	g.start(caddyfile)
	return g
}

// scimSite is startSCIMSite's gateway and Caddyfile, not started yet.
func scimSite(t *testing.T, more ...string) (*gateway, string) {
	t.Helper()
	t.Setenv("CADDY_SSO_TEST_SCIM_ENTRA", scimTokenEntra)
	t.Setenv("CADDY_SSO_TEST_SCIM_OKTA", scimTokenOkta)
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	g := newGateway(t)
	var extra strings.Builder
	for _, line := range more {
		extra.WriteString("\t\t" + line + "\n")
	}
	return g, g.caddyfile(scimProviders(op.Issuer), g.base+` {
	sso_scim {
		idp entra {env.CADDY_SSO_TEST_SCIM_ENTRA}
		idp okta {env.CADDY_SSO_TEST_SCIM_OKTA}
`+extra.String()+`	}
}
`)
}

// The request bodies follow Microsoft's "Develop a SCIM endpoint" tutorial
// (learn.microsoft.com, use-scim-to-provision-users-and-groups) and Okta's
// "SCIM 2.0 Protocol" reference (developer.okta.com), as in provision/scim.

const caddyEntraCreateUser = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
	"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
	"active": true,
	"emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
	"meta": {"resourceType": "User"},
	"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
	"roles": []
}`

func entraSteps(c *scimClient) []scimStep {
	return []scimStep{
		{name: "test connection: a random userName", method: "GET", status: 200,
			path: "/Users?" + filter(`userName eq "Test_User_00aa00aa-00aa-00aa-00aa-00aa00aa00aa"`),
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 0 || !strings.Contains(r.raw, `"Resources":[]`) {
					t.Errorf("empty result: %s", r.raw)
				}
			}},
		{name: "create user", method: "POST", path: "/Users", body: caddyEntraCreateUser, status: 201,
			save: map[string][]any{"user": {"id"}},
			check: func(t *testing.T, r scimResp) {
				id := r.body["id"].(string)
				if loc := r.header.Get("Location"); loc != c.base+"/Users/"+id || at(r.body, "meta", "location") != loc {
					t.Errorf("Location %q, meta.location %v; want %s", loc, at(r.body, "meta", "location"), c.base+"/Users/"+id)
				}
				u := storedUser(t, id)
				if u.Source != store.SourceSCIM || u.IdP != "entra" || u.ExternalID != "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" ||
					u.FirstName != "givenName" || !u.Active {
					t.Errorf("stored %+v", u)
				}
			}},
		{name: "find by userName, other case", method: "GET", status: 200,
			path: "/Users?" + filter(`userName eq "test_user_AB6490EE-1e48-479e-a20b-2d77186b5dd1"`),
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 1 || at(r.body, "Resources", 0, "id") != c.vars["user"] {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "match by externalId (objectId)", method: "GET", status: 200,
			path: "/Users?" + filter(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`),
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "create the same user again", method: "POST", path: "/Users", body: caddyEntraCreateUser, status: 409,
			check: func(t *testing.T, r scimResp) { scimError(t, r, 409, "uniqueness") }},
		{name: "update multi-valued properties", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
				{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]}`,
			check: func(t *testing.T, r scimResp) {
				if u := storedUser(t, c.vars["user"]); u.Email != "updatedEmail@microsoft.com" || u.LastName != "updatedFamilyName" {
					t.Errorf("stored %+v", u)
				}
			}},
		{name: "path-less Add with dotted and URN keys", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Add", "value": {
				"name.givenName": "Augusta",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Engineering"}}]}`,
			check: func(t *testing.T, r scimResp) {
				if at(r.body, "name", "givenName") != "Augusta" ||
					at(r.body, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "department") != "Engineering" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "disable user", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}`,
			check: func(t *testing.T, r scimResp) {
				if r.body["active"] != false || storedUser(t, c.vars["user"]).Active {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "inactive user still readable", method: "GET", path: "/Users/{{user}}", status: 200,
			check: func(t *testing.T, r scimResp) {
				if r.body["active"] != false {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "reactivate", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "active", "value": "True"}]}`,
			check: func(t *testing.T, r scimResp) {
				if !storedUser(t, c.vars["user"]).Active {
					t.Error("not reactivated")
				}
			}},
		{name: "create a second user", method: "POST", path: "/Users", status: 201, save: map[string][]any{"user2": {"id"}},
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"externalId":"oid-2","userName":"second@testuser.com","active":true}`},
		{name: "create group", method: "POST", path: "/Groups", status: 201, save: map[string][]any{"group": {"id"}},
			body: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
				"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
				"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName", "meta": {"resourceType": "Group"}}`,
			check: func(t *testing.T, r scimResp) {
				if r.header.Get("Location") != c.base+"/Groups/"+r.body["id"].(string) {
					t.Errorf("Location %q", r.header.Get("Location"))
				}
			}},
		{name: "get group by displayName", method: "GET", status: 200,
			path: "/Groups?excludedAttributes=members&" + filter(`displayName eq "displayName"`),
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "rename group", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Replace", "path": "displayName", "value": "Engineering"}]}`},
		{name: "add members", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "{{user}}"}, {"$ref": null, "value": "{{user2}}"}]}]}`,
			check: func(t *testing.T, r scimResp) {
				for _, id := range []string{c.vars["user"], c.vars["user2"]} {
					if g := storedUser(t, id).Groups; !slices.Equal(g, []string{"Engineering"}) {
						t.Errorf("user %s Groups = %v", id, g)
					}
				}
			}},
		{name: "remove one member (legacy value list)", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "{{user}}"}]}]}`,
			check: func(t *testing.T, r scimResp) {
				if g := storedUser(t, c.vars["user"]).Groups; len(g) != 0 {
					t.Errorf("removed member keeps %v", g)
				}
				if g := storedUser(t, c.vars["user2"]).Groups; len(g) != 1 {
					t.Errorf("the member not listed lost the group: %v", g)
				}
			}},
		{name: "group has the other member", method: "GET", path: "/Groups/{{group}}", status: 200,
			check: func(t *testing.T, r scimResp) {
				if m, _ := r.body["members"].([]any); len(m) != 1 || at(m, 0, "value") != c.vars["user2"] {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "delete group", method: "DELETE", path: "/Groups/{{group}}", status: 204},
		{name: "delete user", method: "DELETE", path: "/Users/{{user}}", status: 204,
			check: func(t *testing.T, r scimResp) {
				if r.raw != "" {
					t.Errorf("204 with a body: %s", r.raw)
				}
			}},
		{name: "deleted user is gone", method: "GET", path: "/Users/{{user}}", status: 404,
			check: func(t *testing.T, r scimResp) { scimError(t, r, 404, "") }},
		{name: "deleted user no longer matches", method: "GET", status: 200,
			path: "/Users?" + filter(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`),
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 0 {
					t.Errorf("got %s", r.raw)
				}
			}},
	}
}

func caddyOktaPut(active bool) string {
	return fmt.Sprintf(`{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	"id": "{{user}}",
	"userName": "test.user@okta.local",
	"name": {"givenName": "Another", "middleName": "Test", "familyName": "User"},
	"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
	"displayName": "Another Test User",
	"locale": "en-US",
	"externalId": "00ujl29u0le5T6Aj10h7",
	"groups": [],
	"active": %t,
	"meta": {"resourceType": "User", "created": "2025-06-01T09:00:01Z", "lastModified": "2025-06-01T09:00:01Z"}
}`, active)
}

func oktaSteps(c *scimClient) []scimStep {
	return []scimStep{
		{name: "test connector configuration", method: "GET", path: "/Users?startIndex=1&count=1", status: 200,
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 0 || r.body["startIndex"] != float64(1) {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "service provider configuration", method: "GET", path: "/ServiceProviderConfig", status: 200,
			check: func(t *testing.T, r scimResp) {
				if at(r.body, "patch", "supported") != true || at(r.body, "filter", "supported") != true {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "determine if the user exists", method: "GET", status: 200,
			path: "/Users?" + filter(`userName eq "test.user@okta.local"`) + "&startIndex=1&count=100",
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 0 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "create the user", method: "POST", path: "/Users", status: 201, save: map[string][]any{"user": {"id"}},
			body: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "test.user@okta.local",
				"name": {"givenName": "Test", "familyName": "User"},
				"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
				"displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
				"groups": [], "password": "1mz050nq", "active": true}`,
			check: func(t *testing.T, r scimResp) {
				if strings.Contains(r.raw, "1mz050nq") {
					t.Errorf("password in the response: %s", r.raw)
				}
				if u := storedUser(t, r.body["id"].(string)); u.IdP != "okta" || u.Source != store.SourceSCIM {
					t.Errorf("stored %+v", u)
				}
			}},
		{name: "retrieve the user", method: "GET", path: "/Users/{{user}}", status: 200},
		{name: "update the user (PUT)", method: "PUT", path: "/Users/{{user}}", body: caddyOktaPut(true), status: 200,
			check: func(t *testing.T, r scimResp) {
				if at(r.body, "name", "givenName") != "Another" || r.body["displayName"] != "Another Test User" {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "deactivate (PATCH, path-less value)", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"active": false}}]}`,
			check: func(t *testing.T, r scimResp) {
				if r.body["active"] != false || storedUser(t, c.vars["user"]).Active {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "reactivate (PATCH)", method: "PATCH", path: "/Users/{{user}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"active": true}}]}`,
			check: func(t *testing.T, r scimResp) {
				if !storedUser(t, c.vars["user"]).Active {
					t.Error("not reactivated")
				}
			}},
		{name: "deactivate (PUT active=false)", method: "PUT", path: "/Users/{{user}}", body: caddyOktaPut(false), status: 200,
			check: func(t *testing.T, r scimResp) {
				if storedUser(t, c.vars["user"]).Active {
					t.Error("still active")
				}
			}},
		{name: "reactivate (PUT active=true)", method: "PUT", path: "/Users/{{user}}", body: caddyOktaPut(true), status: 200,
			check: func(t *testing.T, r scimResp) {
				if !storedUser(t, c.vars["user"]).Active {
					t.Error("not reactivated")
				}
			}},
		{name: "create a second user", method: "POST", path: "/Users", status: 201, save: map[string][]any{"user2": {"id"}},
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"second@okta.local","externalId":"00u2","active":true,
				"name":{"givenName":"Second","familyName":"User"},"emails":[{"primary":true,"value":"second@okta.local","type":"work"}]}`},
		{name: "create group", method: "POST", path: "/Groups", status: 201, save: map[string][]any{"group": {"id"}},
			body: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []}`},
		{name: "find group by name", method: "GET", path: "/Groups?" + filter(`displayName eq "test scimv2"`) + "&startIndex=1&count=100", status: 200,
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 1 {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "update group name (id in the value)", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "replace", "value": {"id": "{{group}}", "displayName": "Test SCIMv2 renamed"}}]}`},
		{name: "add a member", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{"op": "add", "path": "members", "value": [{"value": "{{user2}}", "display": "second@okta.local"}]}]}`,
			check: func(t *testing.T, r scimResp) {
				if g := storedUser(t, c.vars["user2"]).Groups; !slices.Equal(g, []string{"Test SCIMv2 renamed"}) {
					t.Errorf("Groups = %v", g)
				}
			}},
		{name: "remove by filter, add another", method: "PATCH", path: "/Groups/{{group}}", status: 204, body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{"op": "remove", "path": "members[value eq \"{{user2}}\"]"},
				{"op": "add", "path": "members", "value": [{"value": "{{user}}", "display": "test.user@okta.local"}]}]}`,
			check: func(t *testing.T, r scimResp) {
				if g := storedUser(t, c.vars["user2"]).Groups; len(g) != 0 {
					t.Errorf("removed member keeps %v", g)
				}
				if g := storedUser(t, c.vars["user"]).Groups; len(g) != 1 {
					t.Errorf("added member has %v", g)
				}
			}},
		{name: "replace the group (PUT)", method: "PUT", path: "/Groups/{{group}}", status: 200, body: `{
			"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "{{group}}", "displayName": "Test SCIMv2",
			"members": [{"value": "{{user2}}", "display": "second@okta.local"}]}`,
			check: func(t *testing.T, r scimResp) {
				if g := storedUser(t, c.vars["user"]).Groups; len(g) != 0 {
					t.Errorf("replaced-out member keeps %v", g)
				}
				if g := storedUser(t, c.vars["user2"]).Groups; !slices.Equal(g, []string{"Test SCIMv2"}) {
					t.Errorf("Groups = %v", g)
				}
			}},
		{name: "delete group", method: "DELETE", path: "/Groups/{{group}}", status: 204},
		{name: "list users, paged", method: "GET", path: "/Users?startIndex=2&count=1", status: 200,
			check: func(t *testing.T, r scimResp) {
				if totalResults(t, r) != 2 || r.body["startIndex"] != float64(2) {
					t.Errorf("got %s", r.raw)
				}
			}},
		{name: "delete user", method: "DELETE", path: "/Users/{{user}}", status: 204},
		{name: "deleted user is gone", method: "GET", path: "/Users/{{user}}", status: 404},
	}
}

// TestSCIMSequencesThroughCaddy replays Entra's and Okta's request
// sequences against one site that has nothing but sso_scim, each with its
// own token, and checks that the token decides the IdP.
func TestSCIMSequencesThroughCaddy(t *testing.T) {
	g := startSCIMSite(t)
	entra := newSCIMClient(t, g.base, scimTokenEntra)
	okta := newSCIMClient(t, g.base, scimTokenOkta)

	if !t.Run("entra", func(t *testing.T) { replaySCIM(t, entra, entraSteps(entra)) }) {
		t.FailNow()
	}
	if !t.Run("okta", func(t *testing.T) { replaySCIM(t, okta, oktaSteps(okta)) }) {
		t.FailNow()
	}

	// Each token sees its own IdP's users only: the second user of each
	// sequence is still there.
	entra.t, okta.t = t, t
	if n := totalResults(t, entra.must(200, "GET", "/Users", "")); n != 1 {
		t.Errorf("entra lists %d users, want its one", n)
	}
	if n := totalResults(t, okta.must(200, "GET", "/Users?"+filter(`userName eq "second@testuser.com"`), "")); n != 0 {
		t.Errorf("okta's token sees entra's user")
	}
	r := okta.do("GET", "/Users/"+entra.vars["user2"], "")
	if r.status != http.StatusNotFound {
		t.Errorf("okta's token reads entra's user: %d %s", r.status, r.raw)
	}

	// No token, a wrong one, or one that is a prefix of the right one: 401
	// in SCIM form.
	for _, tok := range []string{"", "wrong-token-0123456789abcdef", scimTokenEntra[:20]} {
		r := newSCIMClient(t, g.base, tok).do("GET", "/Users", "")
		if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("token %q: %d %v", tok, r.status, r.header)
		}
		scimError(t, r, 401, "")
	}
	// Outside /scim/v2, the site answers in SCIM form too (it is terminal).
	site := &scimClient{t: t, base: g.base, token: scimTokenEntra, vars: map[string]string{}}
	if r := site.do("GET", "/other", ""); r.status != http.StatusNotFound {
		t.Errorf("outside the base path: %d %s", r.status, r.raw)
	}

	// The tokens never reach the log.
	logs := g.logs()
	for _, tok := range []string{scimTokenEntra, scimTokenOkta, scimTokenEntra[:20]} {
		if strings.Contains(logs, tok) {
			t.Errorf("Caddy's log contains a bearer token")
		}
	}
	if !strings.Contains(logs, "SCIM provisioning enabled") || !strings.Contains(logs, "scim request refused") {
		t.Errorf("expected provisioning and refusal log lines:\n%s", logs)
	}
	// The start-up line says where SCIM is served, default included.
	if !strings.Contains(logs, `"base_path":"/scim/v2"`) {
		t.Errorf("the start-up log does not show the effective base path:\n%s", logs)
	}
}

// TestSCIMBasePathRefusedWithItsLine: a base_path no decoded, cleaned
// request path can match (a space, a query, a dot segment, an escaped
// slash) is refused at `caddy validate`, with its Caddyfile line, and in a
// JSON config by Validate; "/" alone (under handle_path) is accepted.
func TestSCIMBasePathRefusedWithItsLine(t *testing.T) {
	site := func(bp string) string {
		return scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tbase_path " + bp + "\n\t}\n}\n"
	}
	for _, bp := range []string{`"/scim v2"`, "/scim/v2?x=1", "/scim/../v2", "/scim%2Fv2", "/scim//v2"} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site(bp)), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), "Caddyfile:13") || !strings.Contains(err.Error(), "base_path") {
			t.Errorf("base_path %s: %v, want a refusal at Caddyfile:13 naming base_path", bp, err)
		}
		h := caddymodule.SCIMHandler{IdPs: []caddymodule.SCIMIdP{{Name: "entra", Token: "{env.T}"}}, BasePath: strings.Trim(bp, `"`)}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "base_path") {
			t.Errorf("JSON base_path %s: Validate said %v", bp, err)
		}
	}
	for _, bp := range []string{"/", "/scim/v2/", "/v2"} {
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site(bp)), map[string]any{"filename": "Caddyfile"}); err != nil {
			t.Errorf("base_path %s refused: %v", bp, err)
		}
	}
}

// countingUpstream is the protected app, answering like echoUpstream and
// counting the requests that reach it.
type countingUpstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingUpstream(t *testing.T) *countingUpstream {
	t.Helper()
	u := &countingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

// scimWorld is the OIDC world (IdP "test", JIT on) with the protected app
// on one port and a SCIM site for IdP "test" on another, sharing the store
// and the sessions.
type scimWorld struct {
	*oidcWorld
	app      *countingUpstream
	scimBase string
	scim     *scimClient
}

func newSCIMWorld(t *testing.T) *scimWorld {
	t.Helper()
	t.Setenv("CADDY_SSO_TEST_SCIM_TEST", scimTokenTest)
	w := &scimWorld{oidcWorld: newOIDCWorld(t, "\t\t\tjit\n\t\t\tscim\n"), app: newCountingUpstream(t)}
	w.scimBase = fmt.Sprintf("http://127.0.0.1:%d", testport.For(t))
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n\n%s {\n\tsso_scim {\n\t\tidp test {env.CADDY_SSO_TEST_SCIM_TEST}\n\t}\n}\n",
		w.gw.base, strings.TrimPrefix(w.app.URL, "http://"), w.scimBase)
	w.scim = newSCIMClient(t, w.scimBase, scimTokenTest)
	w.start()
	return w
}

// refusedWithoutUpstream checks that a request with the browser's cookies
// is sent to sign in (a navigation) or refused with 401 (an API call), and
// that neither reaches the app.
func (w *scimWorld) refusedWithoutUpstream(t *testing.T, b *browser) {
	t.Helper()
	before := w.app.hits.Load()
	req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/dashboard", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(resp.Header.Get("Location"), w.idp.Issuer) {
		t.Errorf("navigation with the old session: %s Location %q: %s", resp.Status, resp.Header.Get("Location"), body)
	}
	req, _ = http.NewRequest(http.MethodGet, w.gw.base+"/api/data", nil)
	req.Header.Set("Accept", "application/json")
	resp, err = b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body = readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API call with the old session: %s: %s", resp.Status, body)
	}
	if n := w.app.hits.Load() - before; n != 0 {
		t.Errorf("%d requests with the old session reached the app", n)
	}
}

// TestSCIMDeactivationEndsLiveSession: a user signed in through OIDC (JIT)
// is deactivated by SCIM in Entra's form; the very next request with the
// session cookie no longer reaches the app, and signing in again is
// refused.
func TestSCIMDeactivationEndsLiveSession(t *testing.T) {
	w := newSCIMWorld(t)
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/dashboard", "ada", "ada-pw"))
	saw := upstreamSaw(t, b.get(w.gw.base+"/dashboard"))
	id := userBySubject(t, "sub-ada").ID
	if saw.header("X-Forwarded-User") != id {
		t.Fatalf("session not established: %+v", saw)
	}

	// Entra's matching finds the JIT user by objectId = externalId.
	r := w.scim.must(200, "GET", "/Users?"+filter(`externalId eq "sub-ada"`), "")
	if totalResults(t, r) != 1 || at(r.body, "Resources", 0, "id") != id {
		t.Fatalf("the JIT user is not found by externalId: %s", r.raw)
	}

	// Entra's deactivation, exactly as it sends it.
	r = w.scim.must(200, "PATCH", "/Users/"+id, `{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`)
	if r.body["active"] != false {
		t.Fatalf("got %s", r.raw)
	}

	w.refusedWithoutUpstream(t, b)

	before := w.app.hits.Load()
	resp := newBrowser(t).signIn(w.gw.base+"/dashboard", "ada", "ada-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "deactivated") {
		t.Errorf("sign-in of a deactivated user: %s: %s", resp.Status, body)
	}
	if w.app.hits.Load() != before {
		t.Error("the refused sign-in reached the app")
	}
	if got := auditReasons(t, store.EventSessionRevoked); !slices.Contains(got, account.ReasonDeactivated) {
		t.Errorf("session revocation not audited: %v", got)
	}
	if got := auditReasons(t, store.EventLoginDenied); !slices.Contains(got, "deactivated") {
		t.Errorf("denied sign-in not audited: %v", got)
	}
	if userBySubject(t, "sub-ada").Active {
		t.Error("the sign-in reactivated the user")
	}
}

// scimAda is the SCIM User the directory creates for the test IdP's ada:
// its externalId is her OIDC subject, so her sign-in adopts it.
const scimAda = `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"externalId": "sub-ada", "userName": "ada@example.com", "active": true,
		"name": {"givenName": "Ada", "familyName": "Lovelace"},
		"emails": [{"primary": true, "type": "work", "value": "ada@example.com"}]}`

// TestSCIMProvisionedUserSignsIn: SCIM creates the user first (externalId
// = the OIDC subject) and puts them in a group; their first sign-in adopts
// that user, the group reaches the app, a rename shows on the next
// request, and after a SCIM DELETE the session ends and sign-in is refused
// for as long as sso_scim lists the IdP.
func TestSCIMProvisionedUserSignsIn(t *testing.T) {
	w := newSCIMWorld(t)
	r := w.scim.must(201, "POST", "/Users", scimAda)
	id := r.body["id"].(string)
	r = w.scim.must(201, "POST", "/Groups", fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"displayName": "Analytical Engines", "members": [{"value": %q}]}`, id))
	group := r.body["id"].(string)

	b := newBrowser(t)
	saw := upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	if saw.header("X-Forwarded-User") != id {
		t.Errorf("signed in as %q, want the SCIM user %s", saw.header("X-Forwarded-User"), id)
	}
	u := userBySubject(t, "sub-ada")
	if u.ID != id || u.Source != store.SourceSCIM {
		t.Errorf("after sign-in: %+v", u)
	}
	// The upstream sees the stored groups, SCIM's among them.
	if got := saw.header("X-Forwarded-Groups"); got != strings.Join(u.Groups, ",") || !slices.Contains(u.Groups, "Analytical Engines") {
		t.Errorf("X-Forwarded-Groups %q, stored %v", got, u.Groups)
	}
	users := 0
	view(t, func(tx store.Tx) error {
		return tx.ForEachUser("", func(*store.User) error { users++; return nil })
	})
	if users != 1 {
		t.Errorf("%d users after the sign-in, want the SCIM user alone", users)
	}

	// A rename in the directory shows on the very next request.
	w.scim.must(204, "PATCH", "/Groups/"+group, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "Replace", "path": "displayName", "value": "Difference Engines"}]}`)
	saw = upstreamSaw(t, b.get(w.gw.base+"/"))
	if got := saw.header("X-Forwarded-Groups"); !strings.Contains(got, "Difference Engines") || strings.Contains(got, "Analytical") {
		t.Errorf("after the rename X-Forwarded-Groups = %q", got)
	}

	// Deleted in the directory: the session ends, and sign-in is refused
	// (the tombstone) instead of JIT creating her again.
	w.scim.must(204, "DELETE", "/Users/"+id, "")
	w.refusedWithoutUpstream(t, b)
	resp := newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "deprovisioned") {
		t.Errorf("sign-in after SCIM DELETE: %s: %s", resp.Status, body)
	}
	view(t, func(tx store.Tx) error {
		if _, err := tx.UserByLink("test", "sub-ada"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("JIT re-created the deleted user: %v", err)
		}
		return nil
	})
	if got := auditReasons(t, store.EventLoginDenied); !slices.Contains(got, "deprovisioned") {
		t.Errorf("denial not audited: %v", got)
	}

	// Once the IdP is no longer marked as SCIM-provisioned (and sso_scim
	// is gone), JIT owns its users again and the tombstone no longer
	// applies.
	w.idpBlock = "\t\t\tjit\n"
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, strings.TrimPrefix(w.app.URL, "http://"))
	w.gw.reload(w.caddyfile())
	saw = upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	if again := userBySubject(t, "sub-ada"); again.ID == id || again.Source != store.SourceJIT || saw.header("X-Forwarded-User") != again.ID {
		t.Errorf("after SCIM was turned off: %+v", again)
	}
}

// TestSCIMTokenProblemsFailTheConfig: a token placeholder that resolves to
// nothing or to a short token, or an IdP the sso app lacks (a JSON config
// the Caddyfile adapter did not check), stops the config from loading
// with an error that names the IdP and never the token.
func TestSCIMTokenProblemsFailTheConfig(t *testing.T) {
	g := newGateway(t)
	caddyfile := g.caddyfile("\t\tidp test oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id x\n\t\t\tscim\n\t\t}\n",
		g.base+" {\n\tsso_scim {\n\t\tidp test {env.CADDY_SSO_TEST_SCIM_TOKEN}\n\t}\n}\n")
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, env string
		edit      func(string) string
		want      []string
	}{
		{"unset", "", nil, []string{"sso_scim: idp test", "{env.CADDY_SSO_TEST_SCIM_TOKEN}", "is empty (is it set?)", "at least 16 characters", "a reload does not change the environment"}},
		{"short", "shorty-token", nil, []string{"sso_scim: idp test", "{env.CADDY_SSO_TEST_SCIM_TOKEN}", "shorter than 16 characters"}},
		{"unknown idp", scimTokenTest, func(s string) string { return strings.Replace(s, `"name":"test","token"`, `"name":"nope","token"`, 1) },
			[]string{"sso_scim: idp nope", `no identity provider named "nope"`, "global sso option"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CADDY_SSO_TEST_SCIM_TOKEN", tt.env)
			c := string(cfg)
			if tt.edit != nil {
				if c = tt.edit(c); c == string(cfg) {
					t.Fatalf("edit changed nothing in %s", cfg)
				}
			}
			err := caddy.Load([]byte(c), true)
			if err == nil {
				_ = caddy.Stop()
				t.Fatal("config loaded")
			}
			t.Logf("refused: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tt.env != "" && strings.Contains(err.Error(), tt.env) {
				t.Errorf("error reveals the token: %v", err)
			}
		})
	}
}

// TestSCIMBesideProtectedApp: SCIM and the protected app on one site, each
// in its own handle block, as the sso_scim documentation shows; what the
// handle block's path matcher sends to sso_scim, sso_scim serves.
func TestSCIMBesideProtectedApp(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_SCIM_TEST", scimTokenTest)
	w := newOIDCWorld(t, "\t\t\tjit\n\t\t\tscim\n")
	w.sites = fmt.Sprintf(`%s {
	handle /scim/v2/* {
		sso_scim {
			idp test {env.CADDY_SSO_TEST_SCIM_TEST}
		}
	}
	handle {
		sso test
		reverse_proxy %s
	}
}
`, w.gw.base, w.upstream.hostPort())
	w.start()
	c := newSCIMClient(t, w.gw.base, scimTokenTest)
	r := c.must(201, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"externalId":"sub-ada",
		"userName":"ada@example.com","active":true,"name":{"givenName":"Ada","familyName":"Lovelace"},
		"emails":[{"primary":true,"type":"work","value":"ada@example.com"}]}`)
	if loc := r.header.Get("Location"); loc != w.gw.base+"/scim/v2/Users/"+r.body["id"].(string) {
		t.Errorf("Location %q", loc)
	}
	// SCIM requests never meet the sso handler, and the app is still
	// protected by it.
	if r := newSCIMClient(t, w.gw.base, "").do("GET", "/Users", ""); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Bearer realm="SCIM"` {
		t.Errorf("SCIM without a token: %d %v", r.status, r.header)
	}
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/reports", "ada", "ada-pw"))
	if saw.Path != "/reports" || saw.header("X-Forwarded-User") != r.body["id"] {
		t.Errorf("app saw %+v, want the SCIM user %v", saw, r.body["id"])
	}
	// What Caddy's `handle /scim/v2/*` routes to sso_scim (its path
	// matcher takes any letter case and merges slashes), sso_scim serves
	// (internal/urlpath, the rule of base_path): not a SCIM 404.
	for _, base := range []string{"/SCIM/v2", "//scim/v2", "/scim//v2"} {
		c := &scimClient{t: t, base: w.gw.base + base, token: scimTokenTest, vars: map[string]string{}}
		if got := c.do("GET", "/Users/"+r.body["id"].(string), ""); got.status != http.StatusOK || got.body["userName"] != "ada@example.com" {
			t.Errorf("GET %s/Users/<id>: %d %s, want the user", base, got.status, got.raw)
		}
	}
}
