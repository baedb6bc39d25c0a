package scim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

const baseUser = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
	"userName":"ada@example.com","externalId":"ext-ada","active":true,
	"name":{"givenName":"Ada","familyName":"Lovelace","formatted":"Ada Lovelace"},
	"emails":[{"value":"ada@example.com","type":"work","primary":true}],
	"phoneNumbers":[{"value":"+44 1","type":"work"}]}`

const noEmailUser = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"noemail","active":true}`

func patchBody(ops string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + ops + `]}`
}

func TestUserPatchQuirks(t *testing.T) {
	const ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	type want struct {
		path  []any
		value any // nil: absent
	}
	tests := []struct {
		name  string
		user  string
		ops   string
		want  []want
		email string // stored Email afterwards, when checked
	}{
		{"op in capitals", baseUser, `{"op":"REPLACE","path":"displayName","value":"A"}`,
			[]want{{[]any{"displayName"}, "A"}}, ""},
		{"op Add", baseUser, `{"op":"Add","path":"nickName","value":"Babs"}`,
			[]want{{[]any{"nickName"}, "Babs"}}, ""},
		{"False string with a path", baseUser, `{"op":"Replace","path":"active","value":"False"}`,
			[]want{{[]any{"active"}, false}}, ""},
		{"False string in a path-less value", baseUser, `{"op":"Replace","value":{"active":"False"}}`,
			[]want{{[]any{"active"}, false}}, ""},
		{"Okta's path-less active", baseUser, `{"op":"replace","value":{"active":false}}`,
			[]want{{[]any{"active"}, false}}, ""},
		{"attribute names in any case", baseUser, `{"op":"replace","path":"NAME.GIVENNAME","value":"Augusta"}`,
			[]want{{[]any{"name", "givenName"}, "Augusta"}, {[]any{"name", "familyName"}, "Lovelace"}}, ""},
		{"path-less dotted key", baseUser, `{"op":"Replace","value":{"name.familyName":"King"}}`,
			[]want{{[]any{"name", "familyName"}, "King"}, {[]any{"name", "formatted"}, "Ada Lovelace"}}, ""},
		{"path-less URN attribute key", baseUser,
			`{"op":"Add","value":{"` + ent + `:department":"R&D"}}`,
			[]want{{[]any{ent, "department"}, "R&D"}}, ""},
		{"path-less URN object key", baseUser,
			`{"op":"Add","value":{"` + ent + `":{"costCenter":"42","division":"Analytical"}}}`,
			[]want{{[]any{ent, "costCenter"}, "42"}, {[]any{ent, "division"}, "Analytical"}}, ""},
		{"URN path", baseUser, `{"op":"replace","path":"` + ent + `:employeeNumber","value":"7"}`,
			[]want{{[]any{ent, "employeeNumber"}, "7"}}, ""},
		{"replace complex keeps unnamed sub-attributes", baseUser, `{"op":"replace","path":"name","value":{"givenName":"Augusta"}}`,
			[]want{{[]any{"name", "givenName"}, "Augusta"}, {[]any{"name", "familyName"}, "Lovelace"}}, ""},
		{"work email on a user without emails (Replace)", noEmailUser,
			`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@example.com"}`,
			[]want{{[]any{"emails", 0, "value"}, "new@example.com"}, {[]any{"emails", 0, "type"}, "work"}}, "new@example.com"},
		{"work email on a user without emails (Add)", noEmailUser,
			`{"op":"Add","path":"emails[type eq \"work\"].value","value":"new@example.com"}`,
			[]want{{[]any{"emails", 0, "value"}, "new@example.com"}}, "new@example.com"},
		{"change the work email", baseUser,
			`{"op":"Add","path":"emails[type eq \"work\"].value","value":"ada@new.example"}`,
			[]want{{[]any{"emails", 0, "value"}, "ada@new.example"}, {[]any{"emails", 1}, nil}}, "ada@new.example"},
		{"remove the work email", baseUser, `{"op":"Remove","path":"emails[type eq \"work\"].value"}`,
			[]want{{[]any{"emails"}, nil}}, ""},
		{"primary as a string", noEmailUser,
			`{"op":"add","path":"emails","value":[{"value":"h@example.com","type":"home"},{"value":"w@example.com","type":"work","primary":"True"}]}`,
			[]want{{[]any{"emails", 1, "primary"}, true}}, "w@example.com"},
		{"add appends to a multi-valued attribute", baseUser,
			`{"op":"add","path":"phoneNumbers","value":[{"value":"+44 2","type":"mobile"}]}`,
			[]want{{[]any{"phoneNumbers", 0, "value"}, "+44 1"}, {[]any{"phoneNumbers", 1, "value"}, "+44 2"}}, ""},
		{"replace by value filter", baseUser,
			`{"op":"replace","path":"phoneNumbers[type eq \"work\"].value","value":"+44 9"}`,
			[]want{{[]any{"phoneNumbers", 0, "value"}, "+44 9"}, {[]any{"phoneNumbers", 1}, nil}}, ""},
		{"remove by value filter", baseUser, `{"op":"remove","path":"phoneNumbers[type eq \"work\"]"}`,
			[]want{{[]any{"phoneNumbers"}, nil}}, ""},
		{"remove a sub-attribute", baseUser, `{"op":"remove","path":"name.formatted"}`,
			[]want{{[]any{"name", "formatted"}, nil}, {[]any{"name", "givenName"}, "Ada"}}, ""},
		{"id in a path-less value is ignored", baseUser, `{"op":"replace","value":{"id":"other","displayName":"D"}}`,
			[]want{{[]any{"displayName"}, "D"}}, ""},
		{"several operations in order", baseUser,
			`{"op":"replace","path":"title","value":"A"},{"op":"replace","path":"title","value":"B"}`,
			[]want{{[]any{"title"}, "B"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.vars["id"] = e.must(201, "POST", "/Users", tt.user).body["id"].(string)
			r := e.must(200, "PATCH", "/Users/{{id}}", patchBody(tt.ops))
			got := e.must(200, "GET", "/Users/{{id}}", "")
			for _, w := range tt.want {
				if v := at(r.body, w.path...); v != w.value {
					t.Errorf("PATCH response %v = %#v, want %#v", w.path, v, w.value)
				}
				if v := at(got.body, w.path...); v != w.value {
					t.Errorf("GET %v = %#v, want %#v", w.path, v, w.value)
				}
			}
			if tt.email != "" {
				if u := e.user("{{id}}"); u.Email != tt.email {
					t.Errorf("stored Email %q, want %q", u.Email, tt.email)
				}
				r := e.must(200, "GET", "/Users?filter="+q(`emails[type eq "work"].value eq "`+tt.email+`"`), "")
				if total(t, r) != 1 {
					t.Errorf("email filter after the change: %s", r.raw)
				}
			}
		})
	}
}

func TestUserPatchErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		status   int
		scimType string
	}{
		{"remove without path", patchBody(`{"op":"remove"}`), 400, "noTarget"},
		{"unknown op", patchBody(`{"op":"merge","path":"title","value":"x"}`), 400, "invalidSyntax"},
		{"no operations", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`, 400, "invalidSyntax"},
		{"explicit read-only path", patchBody(`{"op":"replace","path":"id","value":"x"}`), 400, "mutability"},
		{"groups are read-only on users", patchBody(`{"op":"add","path":"groups","value":[{"value":"g"}]}`), 400, "mutability"},
		// RFC 7644 3.5.2: a sub-attribute is held to its own mutability.
		{"explicit read-only sub-attribute path", patchBody(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName","value":"Mallory"}`), 400, "mutability"},
		{"read-only sub-attribute replaced", patchBody(`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName","value":"Mallory"}`), 400, "mutability"},
		{"bad path", patchBody(`{"op":"replace","path":"emails[type eq","value":"x"}`), 400, "invalidPath"},
		{"replace needs a value", patchBody(`{"op":"replace","path":"title"}`), 400, "invalidValue"},
		{"path-less value must be an object", patchBody(`{"op":"replace","value":"x"}`), 400, "invalidValue"},
		{"active must be a boolean", patchBody(`{"op":"replace","path":"active","value":"maybe"}`), 400, "invalidValue"},
		{"userName cannot be removed", patchBody(`{"op":"remove","path":"userName"}`), 400, "invalidValue"},
		{"no target for a complex filter", patchBody(`{"op":"replace","path":"emails[type eq \"home\" or type eq \"other\"].value","value":"x"}`), 400, "noTarget"},
		{"not JSON", `{"Operations":`, 400, "invalidSyntax"},
		{"a path-less value of more attributes than a request may change",
			patchBody(`{"op":"add","value":` + manyKeys("k", 1001) + `}`), 400, "tooMany"},
		{"operations share the budget",
			patchBody(`{"op":"add","value":` + manyKeys("a", 600) + `},{"op":"add","value":` + manyKeys("b", 600) + `}`), 400, "tooMany"},
		{"an extension object counts with its attributes",
			patchBody(`{"op":"add","value":{"urn:example:custom:2.0:User":` + manyKeys("k", 1000) + `}}`), 400, "tooMany"},
		{"a whole-extension path counts its attributes",
			patchBody(`{"op":"add","path":"urn:example:custom:2.0:User","value":` + manyKeys("k", 1001) + `}`), 400, "tooMany"},
		{"more unknown attributes than a user keeps",
			patchBody(`{"op":"add","value":` + manyKeys("k", 101) + `}`), 400, "invalidValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
			before := e.user("{{id}}")
			r := e.do("PATCH", "/Users/{{id}}", tt.body)
			scimError(t, r, tt.status, tt.scimType)
			if after := e.user("{{id}}"); !after.Updated.Equal(before.Updated) {
				t.Error("a refused PATCH changed the user")
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		e := newEnv(t, "entra", entraToken)
		scimError(t, e.do("PATCH", "/Users/nope", patchBody(`{"op":"replace","path":"title","value":"x"}`)), 404, "")
	})
	t.Run("email of another user", func(t *testing.T) {
		e := newEnv(t, "entra", entraToken)
		e.must(201, "POST", "/Users", baseUser)
		e.vars["id"] = e.must(201, "POST", "/Users", noEmailUser).body["id"].(string)
		r := e.do("PATCH", "/Users/{{id}}", patchBody(`{"op":"add","path":"emails[type eq \"work\"].value","value":"ADA@example.com"}`))
		scimError(t, r, http.StatusConflict, "uniqueness")
	})
}

func TestGroupPatchMembers(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	ids := make([]string, 3)
	for i := range ids {
		r := e.must(201, "POST", "/Users", `{"userName":"u`+string(rune('a'+i))+`","active":true}`)
		ids[i] = r.body["id"].(string)
		e.vars["u"+string(rune('a'+i))] = ids[i]
	}
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"team","members":[{"value":"{{ua}}"},{"value":"{{ub}}"}]}`).body["id"].(string)
	members := func() []string {
		r := e.must(200, "GET", "/Groups/{{g}}", "")
		var out []string
		for _, m := range r.body["members"].([]any) {
			out = append(out, m.(map[string]any)["value"].(string))
		}
		return out
	}
	tests := []struct {
		name   string
		ops    string
		want   []string // member letters
		status int      // 0: 204
	}{
		{"add existing and new (no duplicates)", `{"op":"add","path":"members","value":[{"value":"{{ub}}"},{"value":"{{uc}}"}]}`, []string{"a", "b", "c"}, 0},
		{"remove listed only", `{"op":"Remove","path":"members","value":[{"value":"{{ua}}"},{"value":"{{uc}}"}]}`, []string{"b"}, 0},
		{"replace all", `{"op":"replace","path":"members","value":[{"value":"{{ua}}"},{"value":"{{uc}}"}]}`, []string{"a", "c"}, 0},
		{"remove by filter path", `{"op":"remove","path":"members[value eq \"{{uc}}\"]"}`, []string{"a"}, 0},
		{"unknown member is skipped", `{"op":"add","path":"members","value":[{"value":"ghost"},{"value":"{{ub}}"}]}`, []string{"a", "b"}, 0},
		// A sub-attribute of the members is no membership change: removing
		// it removed every member when the fast path (memberEdits) took
		// the PATCH as a remove of "members". It is refused as well, the
		// display being readOnly (RFC 7644 3.5.2).
		{"remove members.display keeps every member", `{"op":"remove","path":"members.display"}`, []string{"a", "b"}, 400},
		// members.value is immutable (RFC 7643 7: "SHALL NOT be
		// updated"): replacing it would move the membership to another
		// user through it. Remove and add do that.
		{"replacing a member's value is refused", `{"op":"replace","path":"members[value eq \"{{ua}}\"].value","value":"{{uc}}"}`, []string{"a", "b"}, 400},
		{"adding another value to a member's is refused", `{"op":"add","path":"members[value eq \"{{ua}}\"].value","value":"{{uc}}"}`, []string{"a", "b"}, 400},
		// Replacing is refused even with the value it has: only add may
		// name an immutable sub-attribute (RFC 7644 3.5.2).
		{"replacing a member's value with its own is refused", `{"op":"replace","path":"members[value eq \"{{ua}}\"].value","value":"{{ua}}"}`, []string{"a", "b"}, 400},
		// Adding the value it has changes nothing, and is no update.
		{"adding a member's value the one it has is accepted", `{"op":"add","path":"members[value eq \"{{ua}}\"].value","value":"{{ua}}"}`, []string{"a", "b"}, 0},
		// "MAY add a value to an immutable attribute if the attribute had
		// no previous value": a filter that matches no member adds the one
		// its equalities describe, and the value is its first.
		{"adding the value of a member the filter adds is accepted", `{"op":"add","path":"members[display eq \"nobody\"].value","value":"{{uc}}"}`, []string{"a", "b", "c"}, 0},
		{"remove all", `{"op":"remove","path":"members"}`, nil, 0},
	}
	for _, tt := range tests {
		if r := e.do("PATCH", "/Groups/{{g}}", patchBody(tt.ops)); tt.status == 0 && r.status != 204 {
			t.Fatalf("%s: %d %s, want 204", tt.name, r.status, r.raw)
		} else if tt.status != 0 {
			scimError(t, r, tt.status, "mutability")
		}
		var want []string
		for _, l := range tt.want {
			want = append(want, e.vars["u"+l])
		}
		got := members()
		wantSet := map[string]bool{}
		for _, w := range want {
			wantSet[w] = true
		}
		if len(got) != len(want) {
			t.Errorf("%s: members %v, want %v", tt.name, got, want)
			continue
		}
		for _, g := range got {
			if !wantSet[g] {
				t.Errorf("%s: members %v, want %v", tt.name, got, want)
			}
		}
		for _, id := range ids {
			in := len(e.user(id).Groups) == 1
			if in != wantSet[id] {
				t.Errorf("%s: user %s Groups %v", tt.name, id, e.user(id).Groups)
			}
		}
	}
	if n := e.logs.FilterMessage("scim group members skipped: not users of this IdP").Len(); n != 1 {
		t.Errorf("%d skip warnings", n)
	}
}

// manyKeys is an object of n string attributes named prefix0, prefix1, ….
func manyKeys(prefix string, n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s%d":"v"`, prefix, i)
	}
	return b.String() + "}"
}

func TestUnknownAttributesAreBounded(t *testing.T) {
	const custom = "urn:example:custom:2.0:User"
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)

	// 98 attributes, and a custom extension that counts as one plus its
	// one attribute: 100, the most a user keeps.
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"add","value":`+manyKeys("k", 98)+`},
		{"op":"add","path":"`+custom+`:team","value":"Blue"}`))
	r := e.must(200, "GET", "/Users/{{id}}", "")
	if r.body["k0"] != "v" || r.body["k97"] != "v" || at(r.body, custom, "team") != "Blue" {
		t.Errorf("got %s", r.raw)
	}
	for _, ops := range []string{
		`{"op":"add","path":"k98","value":"v"}`,
		`{"op":"add","path":"` + custom + `:colour","value":"red"}`,
		`{"op":"add","path":"name.nickname","value":"Ada"}`, // not a sub-attribute of name
		`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:badge","value":"7"}`,
	} {
		r := e.do("PATCH", "/Users/{{id}}", patchBody(ops))
		scimError(t, r, http.StatusBadRequest, "invalidValue")
		if d, _ := r.body["detail"].(string); !strings.Contains(d, "at most 100") {
			t.Errorf("%s: detail %q", ops, d)
		}
	}
	// Changing a kept attribute, or anything else, still works.
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"replace","value":{"k0":"w","active":false}}`))

	// POST and PUT are held to the same bound.
	scimError(t, e.do("POST", "/Users", `{"userName":"many@example.com","k":`+manyKeys("k", 100)+`}`), 400, "invalidValue")
	scimError(t, e.do("PUT", "/Users/{{id}}", `{"userName":"ada@example.com",`+manyKeys("k", 101)[1:]), 400, "invalidValue")
	e.must(200, "PUT", "/Users/{{id}}", `{"userName":"ada@example.com",`+manyKeys("k", 100)[1:])

	// A user stored with more than the bound (before there was one) can
	// still be changed, as long as a change does not add to them.
	u := e.user("{{id}}")
	var attrs map[string]any
	if err := json.Unmarshal(u.SCIMAttributes, &attrs); err != nil {
		t.Fatal(err)
	}
	attrs["big"] = map[string]any{"a": 1, "b": 2}
	u.SCIMAttributes, _ = json.Marshal(attrs)
	if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"replace","path":"active","value":false}`))
	scimError(t, e.do("PATCH", "/Users/{{id}}", patchBody(`{"op":"add","path":"big.c","value":3}`)), 400, "invalidValue")
}

// Entra adds a large group's members in one operation and removes them
// with a value list; Okta removes each with its own filtered path. Member
// IDs index the comparison (see appendUnique), which must still find the
// same duplicates.
func TestGroupPatchManyMembers(t *testing.T) {
	const n = 3000
	e := newEnv(t, "okta", oktaToken)
	ids := make([]string, 0, n)
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		for i := range n {
			u := &store.User{UserName: fmt.Sprintf("u%d@example.com", i), IdP: "okta", Source: store.SourceSCIM,
				Active: true, Created: t0, Updated: t0}
			if err := tx.PutUser(u); err != nil {
				return err
			}
			ids = append(ids, u.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"big","members":[`+memberList(ids[:1000])+`]}`).body["id"].(string)
	members := func() map[string]bool {
		r := e.must(200, "GET", "/Groups/{{g}}", "")
		out := map[string]bool{}
		for _, m := range r.body["members"].([]any) {
			id := m.(map[string]any)["value"].(string)
			if out[id] {
				t.Errorf("member %s listed twice", id)
			}
			out[id] = true
		}
		return out
	}
	want := func(what string, in func(i int) bool) {
		t.Helper()
		got := members()
		for i, id := range ids {
			if got[id] != in(i) {
				t.Fatalf("%s: member %d is in the group: %t, want %t", what, i, got[id], in(i))
			}
		}
		if len(got) > n {
			t.Fatalf("%s: %d members", what, len(got))
		}
	}

	// Members already in, and the same member twice with another display.
	add := memberList(ids[500:]) + fmt.Sprintf(`,{"value":%q,"display":"again"},{"value":%q}`, ids[0], ids[n-1])
	e.must(204, "PATCH", "/Groups/{{g}}", patchBody(`{"op":"Add","path":"members","value":[`+add+`]}`))
	want("add", func(int) bool { return true })

	var even []string
	for i := 0; i < 2000; i += 2 {
		even = append(even, ids[i])
	}
	e.must(204, "PATCH", "/Groups/{{g}}", patchBody(`{"op":"Remove","path":"members","value":[`+memberList(even)+`,{"value":"ghost"}]}`))
	want("legacy remove", func(i int) bool { return i >= 2000 || i%2 == 1 })

	// Okta's removals, interrupted by an add, with one ID in the wrong
	// case: member IDs are case-exact, so that member stays. 1,000
	// operations in all, the most a request may hold.
	var ops []string
	for i := 2001; i < n; i++ {
		id := ids[i]
		if i == 2100 {
			id = strings.ToUpper(id)
		}
		ops = append(ops, fmt.Sprintf(`{"op":"remove","path":"members[value eq \"%s\"]"}`, id))
		if i == 2500 {
			ops = append(ops, fmt.Sprintf(`{"op":"add","path":"members","value":[{"value":%q}]}`, ids[0]))
		}
	}
	e.must(204, "PATCH", "/Groups/{{g}}", patchBody(strings.Join(ops, ",")))
	want("remove by filter", func(i int) bool { return i == 0 || i == 2000 || i == 2100 || i < 2000 && i%2 == 1 })
}

// sameValue's rule, kept by the index: values of a multi-valued attribute
// are the same when their "value"s are, else when they are equal as a
// whole. The attribute is one no schema defines, whose values may be of
// any type (roles' value is a string: checkTypes).
func TestMultiValuedDuplicates(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":"ada","active":true,
		"customRoles":[{"value":"a","display":"A"},{"display":"no value"}]}`).body["id"].(string)
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"add","path":"customRoles","value":[
		{"value":"a","display":"other"}, {"display":"no value"}, {"display":"no value","type":"t"},
		{"value":"b"}, {"value":"b","display":"twice"}, {"value":7}, {"value":7}, {"value":"7"}]}`))
	r := e.must(200, "GET", "/Users/{{id}}?attributes=customRoles", "")
	got, _ := json.Marshal(r.body["customRoles"])
	const want = `[{"display":"A","value":"a"},{"display":"no value"},{"display":"no value","type":"t"},{"value":"b"},{"value":7},{"value":"7"}]`
	if string(got) != want {
		t.Errorf("customRoles after add:\n%s\nwant\n%s", got, want)
	}
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"remove","path":"customRoles","value":[
		{"value":"a"}, {"display":"no value"}, {"value":7}, {"value":"c"}]}`))
	r = e.must(200, "GET", "/Users/{{id}}?attributes=customRoles", "")
	got, _ = json.Marshal(r.body["customRoles"])
	if string(got) != `[{"display":"no value","type":"t"},{"value":"b"},{"value":"7"}]` {
		t.Errorf("customRoles after remove: %s", got)
	}
}

// TestReadOnlySubAttributesIgnored: a readOnly sub-attribute a client
// sends (the enterprise manager.displayName, which the server would set
// from the manager) is not stored or returned, the rest of its attribute
// is (RFC 7644 3.3: readOnly values in a POST or PUT are ignored); in a
// PATCH it is skipped where the value carries it, as a top-level readOnly
// attribute is, and refused where a path names it (TestUserPatchErrors).
// Before, it was stored as the client wrote it and returned to every
// client as if the server had set it.
func TestReadOnlySubAttributesIgnored(t *testing.T) {
	const ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	manager := `{"` + ent + `":{"department":"R&D","manager":{"value":"m-1","displayName":"Mallory"}}}`
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"POST", "POST", "/Users", `{"userName":"bob@example.com",` + manager[1:], 201},
		{"PUT", "PUT", "/Users/{{id}}", `{"userName":"ada@example.com",` + manager[1:], 200},
		{"PATCH, path-less value", "PATCH", "/Users/{{id}}", patchBody(`{"op":"add","value":` + manager + `}`), 200},
		{"PATCH, the extension's path", "PATCH", "/Users/{{id}}", patchBody(`{"op":"replace","path":"` + ent + `","value":` + manager[len(ent)+4:len(manager)-1] + `}`), 200},
		// A path-less value's keys that name the sub-attribute (Entra's
		// dotted form), bare and inside the extension's object.
		{"PATCH, path-less dotted keys", "PATCH", "/Users/{{id}}", patchBody(`{"op":"add","value":{"` + ent + `:manager.value":"m-1","` + ent + `:manager.displayName":"Mallory"}}`), 200},
		{"PATCH, dotted keys in the extension's object", "PATCH", "/Users/{{id}}", patchBody(`{"op":"replace","value":{"` + ent + `":{"manager.value":"m-1","manager.displayName":"Mallory"}}}`), 200},
		{"PATCH, the attribute's path", "PATCH", "/Users/{{id}}", patchBody(`{"op":"add","path":"` + ent + `:manager","value":{"value":"m-1","displayName":"Mallory"}}`), 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.vars["id"] = e.must(201, "POST", "/Users", baseUser).body["id"].(string)
			r := e.must(tt.status, tt.method, tt.path, tt.body)
			e.vars["got"] = r.body["id"].(string)
			got := e.must(200, "GET", "/Users/{{got}}", "")
			for _, d := range []resp{r, got} {
				if v := at(d.body, ent, "manager", "value"); v != "m-1" {
					t.Errorf("manager.value %v, want m-1 kept: %s", v, d.raw)
				}
				if dn := at(d.body, ent, "manager", "displayName"); dn != nil {
					t.Errorf("readOnly manager.displayName kept as %q: %s", dn, d.raw)
				}
			}
			if raw := string(e.user("{{got}}").SCIMAttributes); strings.Contains(raw, "Mallory") {
				t.Errorf("stored: %s", raw)
			}
		})
	}
}
