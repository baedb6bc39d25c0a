package scim_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"testing"
)

// TestGroupDisplayNameExact: a group's displayName is kept byte for byte.
// " admins" is another group than "admins": trimming it would hand its
// members the real group's access and answer the real group's creation
// with 409. Other attributes (userName here) are still trimmed, since a
// space at their ends is a directory typo rather than another value.
func TestGroupDisplayNameExact(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":" zoe@example.com ","externalId":"e-zoe"}`).body["id"].(string)
	if got := e.user("{{id}}").UserName; got != "zoe@example.com" {
		t.Errorf("userName stored as %q, want it trimmed", got)
	}

	names := []string{" admins", "admins", "admins\u00a0", "\u200badmins", "admins "}
	for _, name := range names {
		r := e.must(201, "POST", "/Groups", `{"displayName":`+jsonString(t, name)+`,"members":[{"value":"{{id}}"}]}`)
		if got := r.body["displayName"]; got != name {
			t.Errorf("created %q, response displayName %q", name, got)
		}
		f := e.must(200, "GET", "/Groups?filter="+url.QueryEscape(`displayName eq `+jsonString(t, name)), "")
		if n := total(t, f); n != 1 {
			t.Errorf("filter displayName eq %q: %d results, want 1", name, n)
		}
	}
	got := slices.Clone(e.user("{{id}}").Groups)
	slices.Sort(got)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("user's groups %q, want %q", got, want)
	}

	// A rename keeps the name exact too.
	g := e.must(201, "POST", "/Groups", `{"displayName":"ops"}`).body["id"].(string)
	e.must(204, "PATCH", "/Groups/"+g, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],`+
		`"Operations":[{"op":"replace","path":"displayName","value":" ops"}]}`)
	if got := e.must(200, "GET", "/Groups/"+g, "").body["displayName"]; got != " ops" {
		t.Errorf("renamed to \" ops\", displayName %q", got)
	}

	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"blank", `{"displayName":"  "}`, 400},
		{"no-break blank", `{"displayName":"\u00a0"}`, 400},
		{"duplicate of padded", `{"displayName":" admins"}`, 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.do("POST", "/Groups", tc.body); r.status != tc.status {
				t.Errorf("POST %s: status %d, want %d: %s", tc.body, r.status, tc.status, r.raw)
			}
		})
	}
}

// jsonString is s as a JSON string literal.
func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
