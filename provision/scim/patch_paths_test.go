package scim_test

import (
	"testing"
)

// A value filter in a PATCH path ends at the ] outside its quoted
// strings: a value holding an escaped quote followed by ] is one string,
// and the path selects the element holding it.
func TestPatchPathFilterValueWithEscapedQuoteAndBracket(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":"quirk","emails":[
		{"value":"main@x.io","type":"work","primary":true},
		{"value":"q\"]@x.io","type":"other"}]}`).body["id"].(string)
	r := e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"remove","path":"emails[value eq \"q\\\"]@x.io\"]"}`))
	emails, _ := r.body["emails"].([]any)
	if len(emails) != 1 || at(r.body, "emails", 0, "value") != "main@x.io" {
		t.Fatalf("emails after the remove: %v", r.body["emails"])
	}
	if u := e.user("{{id}}"); len(u.Emails) != 1 || u.Emails[0].Value != "main@x.io" {
		t.Errorf("stored emails %+v", u.Emails)
	}
}

// A boolean sent as a string is read with white space around it trimmed,
// as Entra's "True"/"False" are read in any case: " False " deactivates.
func TestBooleanStringWithSpacesRead(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
	r := e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"active","value":" False "}`))
	if r.body["active"] != false || e.user("{{id}}").Active {
		t.Fatalf("after active \" False \": response active=%v, stored active=%v", r.body["active"], e.user("{{id}}").Active)
	}
	r = e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","value":{"active":"\tTRUE "}}`))
	if r.body["active"] != true || !e.user("{{id}}").Active {
		t.Fatalf("after active \"\\tTRUE \": response active=%v, stored active=%v", r.body["active"], e.user("{{id}}").Active)
	}
}

// A PATCH path puts a value filter on the multi-valued attribute and a
// sub-attribute after it; a filter after a sub-attribute, or a tail that
// is not a sub-attribute name, is invalidPath and changes nothing.
func TestPatchPathMalformedAroundValueFilter(t *testing.T) {
	for _, path := range []string{
		`emails.value[type eq \"work\"]`,
		`emails[type eq \"work\"].va$lue`,
		`emails[type eq \"work\"].1value`,
	} {
		t.Run(path, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
			before := e.user("{{id}}")
			r := e.do("PATCH", "/Users/{{id}}", patchBody(`{"op":"replace","path":"`+path+`","value":"x@example.com"}`))
			scimError(t, r, 400, "invalidPath")
			if after := e.user("{{id}}"); !after.Updated.Equal(before.Updated) || after.Email != before.Email {
				t.Errorf("a refused PATCH changed the user: %+v", after)
			}
		})
	}
}
