package session_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestIdentityValuesHeaderSafe: the {http.auth.user.*} placeholders
// (Boxed) are the same header-safe values as the identity headers (Value):
// an IdP's control characters in a name would otherwise make a header_up
// of the placeholder fail every request of that user.
func TestIdentityValuesHeaderSafe(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	m := session.New(db, session.Config{}, nil, newClock().now)
	u := addUser(t, db, &store.User{Email: "zoe@example.com", FirstName: "Zo\x1b[2J\r\nX", LastName: "Do\te\x7f",
		Groups: []string{"eng\nops", " admins"}, Active: true, Source: store.SourceJIT})
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Resolve(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		field session.Field
		want  string
	}{
		{"user id", session.FieldUserID, u.ID},
		{"email", session.FieldEmail, "zoe@example.com"},
		{"first name", session.FieldFirstName, "Zo[2JX"},
		{"last name", session.FieldLastName, "Doe"},
		{"groups", session.FieldGroups, "eng%0Aops,%20admins"},
		{"idp", session.FieldIdP, "okta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := id.Value(tc.field)[0]
			if header != tc.want {
				t.Errorf("header value %q, want %q", header, tc.want)
			}
			if boxed, _ := id.Boxed(tc.field).(string); boxed != header {
				t.Errorf("placeholder value %q, header value %q", boxed, header)
			}
			if strings.ContainsFunc(header, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("value %q holds a control character", header)
			}
		})
	}
	// The identity itself keeps the exact names (for the identity token).
	if id.FirstName != u.FirstName {
		t.Errorf("Identity.FirstName %q, want the stored %q", id.FirstName, u.FirstName)
	}
}
