package scim_test

import (
	"context"
	"testing"
)

// Deleting a group takes it out of its members' sessions at once.
func TestGroupDeleteReachesTheSessionAtOnce(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"Admins","members":[{"value":"{{id}}"}]}`).body["id"].(string)
	cookie := e.signIn(e.vars["id"])
	if id, err := e.sessions.Resolve(context.Background(), cookie); err != nil || len(id.Groups) != 1 {
		t.Fatalf("before: %v, %v", id, err)
	}
	e.must(204, "DELETE", "/Groups/{{g}}", "")
	id, err := e.sessions.Resolve(context.Background(), cookie)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Groups) != 0 {
		t.Errorf("session groups after the group's deletion: %v", id.Groups)
	}
}

// A PUT that changes only a group's externalId is stored.
func TestGroupExternalIDChangeStored(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"Eng","externalId":"old"}`).body["id"].(string)
	r := e.must(200, "PUT", "/Groups/{{g}}", `{"displayName":"Eng","externalId":"new"}`)
	if r.body["externalId"] != "new" {
		t.Errorf("PUT answer: %s", r.raw)
	}
	if n := total(t, e.must(200, "GET", "/Groups?filter="+q(`externalId eq "new"`), "")); n != 1 {
		t.Errorf("filter by the new externalId: %d", n)
	}
}

// Operations apply in order (RFC 7644 3.5.2): a member added and then
// removed in the same PATCH is not a member afterwards, and one removed
// and then added is.
func TestGroupPatchAddThenRemoveInOneRequest(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	for _, n := range []string{"a", "b"} {
		e.vars[n] = e.must(201, "POST", "/Users", `{"userName":"`+n+`"}`).body["id"].(string)
	}
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"team","members":[{"value":"{{a}}"}]}`).body["id"].(string)
	e.must(204, "PATCH", "/Groups/{{g}}", patchBody(
		`{"op":"add","path":"members","value":[{"value":"{{b}}"}]},`+
			`{"op":"remove","path":"members[value eq \"{{b}}\"]"},`+
			`{"op":"remove","path":"members","value":[{"value":"{{a}}"}]},`+
			`{"op":"add","path":"members","value":[{"value":"{{a}}"}]}`))
	r := e.must(200, "GET", "/Groups/{{g}}", "")
	members, _ := r.body["members"].([]any)
	if len(members) != 1 || at(r.body, "members", 0, "value") != e.vars["a"] {
		t.Errorf("members after add b, remove b, remove a, add a: %v; want a alone", r.body["members"])
	}
}
