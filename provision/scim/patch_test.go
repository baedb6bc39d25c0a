package scim_test

import (
	"net/http"
	"testing"
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
		{"bad path", patchBody(`{"op":"replace","path":"emails[type eq","value":"x"}`), 400, "invalidPath"},
		{"replace needs a value", patchBody(`{"op":"replace","path":"title"}`), 400, "invalidValue"},
		{"path-less value must be an object", patchBody(`{"op":"replace","value":"x"}`), 400, "invalidValue"},
		{"active must be a boolean", patchBody(`{"op":"replace","path":"active","value":"maybe"}`), 400, "invalidValue"},
		{"userName cannot be removed", patchBody(`{"op":"remove","path":"userName"}`), 400, "invalidValue"},
		{"no target for a complex filter", patchBody(`{"op":"replace","path":"emails[type eq \"home\" or type eq \"other\"].value","value":"x"}`), 400, "noTarget"},
		{"not JSON", `{"Operations":`, 400, "invalidSyntax"},
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
		name string
		ops  string
		want []string // member letters
	}{
		{"add existing and new (no duplicates)", `{"op":"add","path":"members","value":[{"value":"{{ub}}"},{"value":"{{uc}}"}]}`, []string{"a", "b", "c"}},
		{"remove listed only", `{"op":"Remove","path":"members","value":[{"value":"{{ua}}"},{"value":"{{uc}}"}]}`, []string{"b"}},
		{"replace all", `{"op":"replace","path":"members","value":[{"value":"{{ua}}"},{"value":"{{uc}}"}]}`, []string{"a", "c"}},
		{"remove by filter path", `{"op":"remove","path":"members[value eq \"{{uc}}\"]"}`, []string{"a"}},
		{"unknown member is skipped", `{"op":"add","path":"members","value":[{"value":"ghost"},{"value":"{{ub}}"}]}`, []string{"a", "b"}},
		{"remove all", `{"op":"remove","path":"members"}`, nil},
	}
	for _, tt := range tests {
		e.must(204, "PATCH", "/Groups/{{g}}", patchBody(tt.ops))
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
