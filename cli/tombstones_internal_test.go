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

// TestTombstoneTableHome: tombstones list shows a following tombstone's
// home, and "(lifted)" once that home is gone (a SCIM create lifted it),
// which tells the operator that sign-in no longer heeds it; a standing home,
// or none, is never marked.
func TestTombstoneTableHome(t *testing.T) {
	deleted := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	home := &store.Link{IdP: "scim-idp", Subject: "home-sub"}
	var out bytes.Buffer
	c := &cobra.Command{}
	c.SetOut(&out)
	err := printTombstones(c, []account.TombstoneInfo{
		{Tombstone: store.Tombstone{IdP: "a", Subject: "standing", UserID: "u1", Deleted: deleted, Home: home}},
		{Tombstone: store.Tombstone{IdP: "b", Subject: "gone", UserID: "u1", Deleted: deleted, Home: home}, HomeLifted: true},
		{Tombstone: store.Tombstone{IdP: "c", Subject: "own", UserID: "u2", Deleted: deleted}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for _, tc := range []struct {
		subject, want string
		lifted        bool
	}{
		{"standing", "scim-idp: home-sub", false},
		{"gone", "scim-idp: home-sub (lifted)", true},
		{"own", "-", false},
	} {
		var line string
		for _, l := range lines {
			if strings.Contains(l, " "+tc.subject+" ") {
				line = l
			}
		}
		if !strings.HasSuffix(strings.TrimSpace(line), tc.want) || strings.Contains(line, "(lifted)") != tc.lifted {
			t.Errorf("the row of %s is %q, want it to end in %q\n%s", tc.subject, line, tc.want, out.String())
		}
	}
	if !strings.Contains(out.String(), "\n3 tombstone(s)\n") {
		t.Errorf("no count line:\n%s", out.String())
	}
}
