package scim_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

// RFC 7643 2.3, RFC 7644 3.12: a value of another type than /Schemas
// gives the attribute is 400 invalidValue naming it, whether the
// attribute has a store field or is kept in the SCIM document, and the
// user is left as it was.
func TestSchemaTypesEnforced(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"ada","title":"Engineer"}`).body["id"].(string)
	before := e.must(200, "GET", "/Users/{{u}}", "").raw
	for _, c := range []struct{ op, attr string }{
		{`{"op":"replace","path":"title","value":{"nested":true}}`, "title"},
		{`{"op":"replace","path":"title","value":42}`, "title"},
		{`{"op":"replace","path":"` + urnEnterprise + `:employeeNumber","value":12345}`, "employeeNumber"},
		{`{"op":"add","value":{"` + urnEnterprise + `":{"department":["a"]}}}`, "department"},
		{`{"op":"replace","path":"` + urnEnterprise + `:manager","value":{"value":7}}`, "manager.value"},
		{`{"op":"replace","path":"name.middleName","value":5}`, "name.middleName"},
		{`{"op":"add","path":"phoneNumbers","value":[{"value":5551234}]}`, "phoneNumbers.value"},
		{`{"op":"add","path":"phoneNumbers","value":[{"value":"555","primary":"yes"}]}`, "phoneNumbers.primary"},
		{`{"op":"add","path":"addresses","value":"1 Main St"}`, "addresses"},
		{`{"op":"replace","path":"profileUrl","value":false}`, "profileUrl"},
		{`{"op":"replace","path":"` + urnEnterprise + `","value":{"costCenter":{"a":1}}}`, "costCenter"},
	} {
		r := e.do("PATCH", "/Users/{{u}}", patchBody(c.op))
		scimError(t, r, 400, "invalidValue")
		if d, _ := r.body["detail"].(string); !strings.Contains(d, c.attr) {
			t.Errorf("%s: detail %q does not name %s", c.op, d, c.attr)
		}
	}
	if after := e.must(200, "GET", "/Users/{{u}}", "").raw; after != before {
		t.Errorf("refused PATCHes changed the user:\n%s\nwas\n%s", after, before)
	}
	for _, body := range []string{
		`{"userName":"bob","title":42}`,
		`{"userName":"bob","` + urnEnterprise + `":"x"}`,
		`{"userName":"bob","` + urnEnterprise + `":{"employeeNumber":12345}}`,
		`{"userName":"bob","roles":{"value":"admin"}}`,
		`{"userName":"bob","name":{"givenName":"Bob","formatted":["Bob"]}}`,
	} {
		scimError(t, e.do("POST", "/Users", body), 400, "invalidValue")
		scimError(t, e.do("PUT", "/Users/{{u}}", body), 400, "invalidValue")
	}
	scimError(t, e.do("POST", "/Groups", `{"displayName":"staff","members":[{"value":"x","display":7}]}`), 400, "invalidValue")
}

// A bare value given for a multi-valued complex attribute is one element
// of it ({"value": …}), as Entra's bare manager is the manager's value;
// booleans may be Entra's strings; attributes no schema defines are kept
// as they come.
func TestSchemaTypesNormalizedAndUnknownKept(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	r := e.must(201, "POST", "/Users", `{"userName":"ada","roles":"admin","customThing":{"nested":1},
		"emails":[{"value":"ada@example.com","primary":"True"}],"`+urnEnterprise+`":{"manager":"boss-id"}}`)
	e.vars["u"] = r.body["id"].(string)
	if got, _ := json.Marshal(r.body["roles"]); string(got) != `[{"value":"admin"}]` {
		t.Errorf("POST roles \"admin\": roles %s", got)
	}
	if got, _ := json.Marshal(r.body["customThing"]); string(got) != `{"nested":1}` {
		t.Errorf("unknown attribute: %s", got)
	}
	if got := at(r.body, urnEnterprise, "manager", "value"); got != "boss-id" {
		t.Errorf("manager %v", got)
	}
	// An extension sent as null holds nothing, and read-only attributes
	// are ignored (RFC 7643 2.2), whatever they hold: neither is a wrong
	// type.
	e.must(201, "POST", "/Users", `{"userName":"bea","`+urnEnterprise+`":null,"id":7,"meta":"yesterday","groups":"admins"}`)
	r = e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"add","path":"roles","value":"auditor"},{"op":"add","path":"entitlements","value":["a", {"value":"b"}]}`))
	if got, _ := json.Marshal(r.body["roles"]); string(got) != `[{"value":"admin"},{"value":"auditor"}]` {
		t.Errorf("PATCH add roles \"auditor\": roles %s", got)
	}
	if got, _ := json.Marshal(r.body["entitlements"]); string(got) != `[{"value":"a"},{"value":"b"}]` {
		t.Errorf("PATCH add entitlements: %s", got)
	}
}

// A user stored with a value of the wrong type (before types were
// checked) stays writable: the directory can still deactivate it and
// change other attributes; only a new wrong value is refused.
func TestSchemaTypesStoredBeforeStayWritable(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	var id string
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		u := &store.User{IdP: "entra", Source: store.SourceSCIM, UserName: "old", Active: true, Created: t0, Updated: t0,
			SCIMAttributes: []byte(`{"title":42,"roles":"admin","` + urnEnterprise + `":{"employeeNumber":12345}}`)}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		id = u.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.vars["u"] = id
	e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"replace","path":"active","value":false}`))
	e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"replace","path":"`+urnEnterprise+`:department","value":"R&D"}`))
	scimError(t, e.do("PATCH", "/Users/{{u}}", patchBody(`{"op":"replace","path":"title","value":43}`)), 400, "invalidValue")
}
