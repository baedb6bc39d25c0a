package scim

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

// FuzzMemberEdits: a PATCH that memberEdits takes (applied to the sorted
// member IDs, without the group's document) leaves the group exactly as
// the general path (applyPatch on the document, then groupFromDoc) would,
// which also accepts it; one memberEdits declines goes to the general
// path, whatever it makes of it.
func FuzzMemberEdits(f *testing.F) {
	for _, ops := range []string{
		// What Entra, Okta and PingOne send.
		`{"op":"Add","path":"members","value":[{"value":"u-9"},{"value":"u-1"}]}`,
		`{"op":"add","path":"members","value":[{"value":"u-9","display":"nine@x.io"}]}`,
		`{"op":"remove","path":"members[value eq \"u-1\"]"},{"op":"remove","path":"members[value eq \"u-3\"]"}`,
		`{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u-2"}]}`,
		`{"op":"replace","path":"members","value":[{"value":"u-3"},{"value":"u-9"},{"value":"u-3"}]}`,
		`{"op":"remove","path":"members[value eq \"u-2\"]"},{"op":"add","path":"members","value":[{"value":"u-2"}]}`,
		// Orders, repeats and the empty cases.
		`{"op":"add","path":"members","value":[{"value":"u-9"}]},{"op":"remove","path":"members","value":[{"value":"u-9"}]},{"op":"add","path":"members","value":[{"value":"u-9"}]}`,
		`{"op":"remove","path":"members"},{"op":"add","path":"members","value":[{"value":"u-1"}]}`,
		`{"op":"replace","path":"members","value":[]},{"op":"add","path":"members","value":{"value":"u-8"}}`,
		`{"op":"replace","path":"members","value":null}`,
		`{"op":"remove","path":"members","value":null}`,
		`{"op":"remove","path":"members","value":[]}`,
		`{"op":"add","path":"members","value":null}`,
		`{"op":"add","path":"members","value":[]}`,
		// Spellings.
		`{"op":"add","path":"Members","value":[{"Value":"u-7"}]}`,
		`{"op":"add","path":"urn:ietf:params:scim:schemas:core:2.0:Group:members","value":[{"value":"u-7","VALUE":"u-6"}]}`,
		`{"op":"add","path":"members","value":[{"Value":"u-7","VALUE":"u-6"}]}`,
		`{"op":"remove","path":"members[VALUE eq \"u-1\"]"}`,
		`{"op":"remove","path":"members[value eq \"U-1\"]"}`,
		`{"op":"remove","path":"members","value":[{"Value":"u-1"}]}`,
		// What the general path refuses or reads otherwise.
		`{"op":"add","path":"members","value":[{"value":" u-9"}]},{"op":"remove","path":"members","value":[{"value":"u-9"}]}`,
		`{"op":"add","path":"members","value":[{"value":""}]}`,
		`{"op":"add","path":"members","value":[{"value":5}]}`,
		`{"op":"add","path":"members","value":["u-9"]}`,
		`{"op":"add","path":"members","value":"u-9"}`,
		`{"op":"add","path":"members"}`,
		`{"op":"replace","path":"members"}`,
		`{"op":"add","path":"members.value","value":"u-9"}`,
		`{"op":"remove","path":"members.display"}`,
		`{"op":"remove","path":"members.value"}`,
		`{"op":"replace","path":"members.display","value":"x"}`,
		`{"op":"remove","path":"members[display eq \"x\"]"}`,
		`{"op":"remove","path":"members[value eq \"u-1\" or value eq \"u-2\"]"}`,
		`{"op":"remove","path":"members[value eq \"\"]"}`,
		`{"op":"remove","path":"members[value eq \"u-1\"].display"}`,
		`{"op":"add","path":"members[value eq \"u-1\"]","value":{"display":"x"}}`,
		`{"op":"remove","path":"members","value":[{"display":"x"}]}`,
		`{"op":"remove","path":"members","value":[{"value":1}]}`,
		`{"op":"replace","path":"displayName","value":"H"},{"op":"add","path":"members","value":[{"value":"u-9"}]}`,
		`{"op":"replace","value":{"members":[{"value":"u-9"}]}}`,
		`{"op":"add","path":"members[","value":[]}`,
	} {
		f.Add(`{"Operations":[` + ops + `]}`)
	}
	h := newFuzzEnv(f).h
	f.Fuzz(func(t *testing.T, body string) {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(body))
		d.UseNumber()
		if d.Decode(&m) != nil {
			return
		}
		ops, err := parsePatch(m)
		if err != nil {
			return
		}
		old := &store.Group{ID: "g-1", IdP: "entra", DisplayName: "G", ExternalID: "x-1", Members: []string{"u-1", "u-2", "u-3"}}
		members := slices.Clone(old.Members)
		edits, ok := memberEdits(h.groups, ops)
		if !ok {
			return
		}
		fast := store.NormalMembers(applyMemberEdits(old.Members, edits))
		if !slices.Equal(old.Members, members) {
			t.Fatalf("applyMemberEdits changed the old member list: %v", old.Members)
		}
		doc := h.groupDoc(old)
		if err := applyPatch(h.groups, doc, ops); err != nil {
			t.Fatalf("memberEdits took a PATCH the general path refuses: %v\n%s", err, body)
		}
		g, err := h.groupFromDoc(doc, old)
		if err != nil {
			t.Fatalf("memberEdits took a PATCH the general path refuses: %v\n%s", err, body)
		}
		if want := store.NormalMembers(g.Members); !slices.Equal(fast, want) {
			t.Fatalf("members %q, the general path gives %q\n%s", fast, want, body)
		}
		if g.DisplayName != old.DisplayName || g.ExternalID != old.ExternalID {
			t.Fatalf("the general path changed more than members: %+v\n%s", g, body)
		}
	})
}

// The shapes directories send for membership changes are the ones
// memberEdits takes; a PATCH that also changes something else is not.
func TestMemberEditsTakesDirectoryShapes(t *testing.T) {
	h := newFuzzEnv(t).h
	for ops, want := range map[string]bool{
		`{"op":"Add","path":"members","value":[{"value":"u-9"}]}`:                                                  true,
		`{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u-2"}]}`:                                   true,
		`{"op":"remove","path":"members[value eq \"u-1\"]"}`:                                                       true,
		`{"op":"replace","path":"members","value":[{"value":"u-3"}]}`:                                              true,
		`{"op":"remove","path":"members"}`:                                                                         true,
		`{"op":"replace","path":"displayName","value":"H"}`:                                                        false,
		`{"op":"remove","path":"members.display"}`:                                                                 false,
		`{"op":"remove","path":"members.value"}`:                                                                   false,
		`{"op":"replace","value":{"id":"g-1","displayName":"H"}}`:                                                  false,
		`{"op":"add","path":"members","value":[{"value":"u-9"}]},{"op":"replace","path":"externalId","value":"y"}`: false,
	} {
		ops2, err := parsePatch(map[string]any{"Operations": decodeList(t, "["+ops+"]")})
		if err != nil {
			t.Fatal(err)
		}
		if _, got := memberEdits(h.groups, ops2); got != want {
			t.Errorf("%s: taken %v, want %v", ops, got, want)
		}
	}
}

func decodeList(t *testing.T, s string) []any {
	t.Helper()
	var v []any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
