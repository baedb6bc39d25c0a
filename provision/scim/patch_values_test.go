package scim_test

import (
	"testing"
)

// remove with a value filter drops every value it matches, however many:
// of three phone numbers, the two work ones go and the mobile one stays.
func TestPatchRemoveByFilterDropsEveryMatch(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":"ada","phoneNumbers":[
		{"value":"+44 1","type":"work"},{"value":"+44 2","type":"work"},{"value":"+44 3","type":"mobile"}]}`).body["id"].(string)
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"remove","path":"phoneNumbers[type eq \"work\"]"}`))
	r := e.must(200, "GET", "/Users/{{id}}", "")
	phones, _ := r.body["phoneNumbers"].([]any)
	if len(phones) != 1 || at(r.body, "phoneNumbers", 0, "value") != "+44 3" {
		t.Errorf("phone numbers after removing the work ones: %v", r.body["phoneNumbers"])
	}
}

// A user's groups are read-only (RFC 7643 4.1.2): a remove by value
// filter, the shape Okta sends for members, is refused with mutability
// like any other write to them, not answered 200 as if done.
func TestPatchRemoveFromReadOnlyByValueRefused(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"staff","members":[{"value":"{{id}}"}]}`).body["id"].(string)
	scimError(t, e.do("PATCH", "/Users/{{id}}", patchBody(`{"op":"remove","path":"groups[value eq \"{{g}}\"]"}`)), 400, "mutability")
	if r := e.must(200, "GET", "/Groups/{{g}}", ""); len(r.body["members"].([]any)) != 1 {
		t.Errorf("group members after the refused PATCH: %v", r.body["members"])
	}
}

// replace on a value filter without a sub-attribute sets the matched
// value to the one given (RFC 7644 3.5.2.3), its other sub-attributes
// gone; add merges into it.
func TestPatchFilteredReplaceSetsAddMerges(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":"ada","phoneNumbers":[{"value":"+44 1","type":"work","display":"desk"}]}`).body["id"].(string)
	r := e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"add","path":"phoneNumbers[type eq \"work\"]","value":{"value":"+44 2"}}`))
	if at(r.body, "phoneNumbers", 0, "value") != "+44 2" || at(r.body, "phoneNumbers", 0, "display") != "desk" {
		t.Errorf("after add: %v", r.body["phoneNumbers"])
	}
	r = e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"replace","path":"phoneNumbers[type eq \"work\"]","value":{"value":"+44 3","type":"work"}}`))
	if at(r.body, "phoneNumbers", 0, "value") != "+44 3" || at(r.body, "phoneNumbers", 0, "display") != nil {
		t.Errorf("after replace: %v", r.body["phoneNumbers"])
	}
}

// Of several values marked primary, the last one sent stays primary
// (RFC 7643 2.4 allows one), and the gateway's address is that one.
func TestLastPrimaryWins(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":"ada","emails":[
		{"value":"first@x.io","type":"work","primary":true},{"value":"last@x.io","type":"home","primary":true}]}`).body["id"].(string)
	r := e.must(200, "GET", "/Users/{{id}}", "")
	if at(r.body, "emails", 0, "primary") == true || at(r.body, "emails", 1, "primary") != true {
		t.Errorf("primaries: %v", r.body["emails"])
	}
	if u := e.user("{{id}}"); u.Email != "last@x.io" {
		t.Errorf("stored Email %q, want last@x.io", u.Email)
	}
}

// The values of an attribute no schema defines compare exactly (the
// schema's rules are unknown): adding "A" beside "a" keeps both, and a
// remove of "A" by value list leaves "a".
func TestUnknownMultiValuedAttributeComparesExactly(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":"ada","badges":[{"value":"a"}]}`).body["id"].(string)
	r := e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"add","path":"badges","value":[{"value":"A"}]}`))
	if b, _ := r.body["badges"].([]any); len(b) != 2 {
		t.Fatalf("badges after adding A beside a: %v", r.body["badges"])
	}
	r = e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"remove","path":"badges","value":[{"value":"A"}]}`))
	if b, _ := r.body["badges"].([]any); len(b) != 1 || at(r.body, "badges", 0, "value") != "a" {
		t.Errorf("badges after removing A: %v", r.body["badges"])
	}
}
