package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// printTo is a command whose output is buf, with --json set as given.
func printTo(buf *bytes.Buffer, json bool) *cobra.Command {
	c := &cobra.Command{}
	c.Flags().Bool("json", json, "")
	c.SetOut(buf)
	return c
}

// TestPrintUsersEdges: users list --json prints [] for no users (a script
// reads an array, never null), and the table neutralises terminal escapes
// in a user's ID, as in every other column of store text.
func TestPrintUsersEdges(t *testing.T) {
	var buf bytes.Buffer
	if err := printUsers(printTo(&buf, true), nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(buf.String()); got != "[]" {
		t.Errorf("users list --json of no users printed %q, want []", got)
	}
	buf.Reset()
	if err := printUsers(printTo(&buf, false), []*store.User{{ID: "u-\x1b]0;owned\a"}}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(buf.String(), "\x1b\a") {
		t.Errorf("users list printed a terminal escape from a user's ID: %q", buf.String())
	}
}

// TestPrintUserDetailSessions: users show says when --sessions cut the
// list ("the newest N shown") and only then, and shows how the IdP named
// each session (for its sign-out) whenever any session has an IdP subject
// or an IdP session: a SAML SessionIndex alone is worth showing.
func TestPrintUserDetailSessions(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		sessions []account.SessionInfo
		count    int
		cut      bool
		named    bool
	}{
		{"all shown", []account.SessionInfo{{IdP: "a", Created: created}, {IdP: "a", Created: created}}, 2, false, false},
		{"cut by --sessions", []account.SessionInfo{{IdP: "a", Created: created}, {IdP: "a", Created: created}}, 3, true, false},
		{"an IdP session only", []account.SessionInfo{{IdP: "s", Created: created, IdPSession: "_sessionindex1"}}, 1, false, true},
		{"an IdP subject", []account.SessionInfo{{IdP: "s", Created: created, IdPSubject: "nameid"}}, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			d := &account.UserDetail{User: &store.User{ID: "u1"}, Sessions: tc.sessions, SessionCount: tc.count}
			if err := printUserDetail(printTo(&buf, false), d); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if got := strings.Contains(out, "the newest "); got != tc.cut {
				t.Errorf("says the list was cut: %v, want %v\n%s", got, tc.cut, out)
			}
			if tc.cut && !strings.Contains(out, "3 session(s), the newest 2 shown (--sessions)") {
				t.Errorf("the cut list is not described:\n%s", out)
			}
			if got := strings.Contains(out, "As the IdP named them"); got != tc.named {
				t.Errorf("shows how the IdP named them: %v, want %v\n%s", got, tc.named, out)
			}
			if tc.named && !strings.Contains(out, tc.sessions[0].IdPSession+tc.sessions[0].IdPSubject) {
				t.Errorf("the IdP's name of the session is not shown:\n%s", out)
			}
		})
	}
}
