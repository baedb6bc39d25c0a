package cli_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestUsersShowTimesAcrossDST: `users show`, run with TZ=America/New_York,
// wrote a session's times in local time without a zone, so two sessions
// begun an hour apart across the autumn DST change, at 01:30 EDT and
// 01:30 EST, read alike (and an 8 h session seemed to last 7 h). Local
// times carry their zone, as those of `caddy sso keys` do. The command
// runs in a child process, which takes its zone from TZ.
func TestUsersShowTimesAcrossDST(t *testing.T) {
	if _, err := time.LoadLocation("America/New_York"); err != nil {
		t.Skip(err)
	}
	u := &store.User{Email: "a@example.com", Active: true, Source: store.SourceJIT, IdP: "test", ExternalID: "sub-a"}
	first := time.Date(2027, 11, 7, 5, 30, 0, 0, time.UTC) // 01:30 EDT
	path := storeWith(t, func(tx store.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		for i, c := range []time.Time{first, first.Add(time.Hour)} { // 01:30 EST
			s := &store.Session{Hash: strings.Repeat("ab", 31) + "0" + string(rune('1'+i)), UserID: u.ID, IdP: "test",
				Created: c, Expires: c.Add(8 * time.Hour), LastSeen: c}
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		return nil
	})
	cmd := childCommand(os.Args[0], nil, "users", "show", u.ID, "--store="+path)
	cmd.Env = append(cmd.Env, "TZ=America/New_York")
	raw, err := cmd.CombinedOutput()
	out := string(raw)
	if err != nil {
		t.Fatalf("users show: %v\n%s", err, out)
	}
	for _, want := range []string{
		"2027-11-07 01:30:00 EDT  2027-11-07 08:30:00 EST", // created, expires
		"2027-11-07 01:30:00 EST  2027-11-07 09:30:00 EST",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("users show lacks %q:\n%s", want, out)
		}
	}
}
