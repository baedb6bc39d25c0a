package cli_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// auditStore is a stopped bbolt store whose trail holds n events.
func auditStore(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		for i := range n {
			if err := tx.Audit(store.Event{Type: store.EventUserCreated, IdP: "test", UserID: fmt.Sprintf("u%d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// audit --limit N prints at most N events, also when they fill a page
// exactly; --follow ignores --limit (its help says so) and prints every
// event until interrupted.
func TestCLIAuditLimit(t *testing.T) {
	path := auditStore(t, 5)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--limit", "1"}, 1},
		{[]string{"--limit", "2"}, 2},
		{[]string{"--limit", "5"}, 5},
		{[]string{"--limit", "9"}, 5},
		{[]string{"--follow", "--interval", "50ms", "--limit", "2"}, 5},
	} {
		// --follow is interrupted, as an operator ends it: without error.
		wait := time.Hour
		if tc.args[0] == "--follow" {
			wait = 3 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		out, err := cli(ctx, append([]string{"audit", "--json", "--store", path}, tc.args...)...)
		cancel()
		if err != nil {
			t.Fatalf("audit %v: %v\n%s", tc.args, err, out)
		}
		if got := strings.Count(out, `"type":"user.created"`); got != tc.want {
			t.Errorf("audit %v printed %d events, want %d\n%s", tc.args, got, tc.want, out)
		}
	}
}
