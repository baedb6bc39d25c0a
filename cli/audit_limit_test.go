package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// storeWith is a stopped bbolt store holding what fill writes.
func storeWith(t *testing.T, fill func(tx store.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), fill)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// auditStore is a stopped bbolt store whose trail holds n events.
func auditStore(t *testing.T, n int) string {
	t.Helper()
	return storeWith(t, func(tx store.Tx) error {
		for i := range n {
			if err := tx.Audit(store.Event{Type: store.EventUserCreated, IdP: "test", UserID: fmt.Sprintf("u%d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
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

// pagedStore is a stopped bbolt store holding n users, each with a
// tombstone and an audit event: more than a page (account.MaxPageSize) of
// each when n exceeds it.
func pagedStore(t *testing.T, n int) string {
	t.Helper()
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return storeWith(t, func(tx store.Tx) error {
		for i := range n {
			sub := fmt.Sprintf("sub%05d", i)
			u := &store.User{Email: sub + "@example.com", Active: true, Source: store.SourceJIT, IdP: "test",
				Links: []store.Link{{IdP: "test", Subject: sub}}, Created: t0, Updated: t0}
			if err := tx.PutUser(u); err != nil {
				return err
			}
			if err := tx.PutTombstone(&store.Tombstone{IdP: "gone", Subject: sub, UserID: "deleted-" + sub, Deleted: t0}); err != nil {
				return err
			}
			if err := tx.Audit(store.Event{Time: t0, Type: store.EventUserCreated, IdP: "test", UserID: u.ID}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Listings longer than one page of the store go on from where each page
// ended, and --limit counts what every page printed: users list,
// tombstones list and audit print each record once, none repeated or left
// out, and never more than --limit.
func TestCLIListsPastOnePage(t *testing.T) {
	n := account.MaxPageSize + 5
	path := pagedStore(t, n)
	// keys reads what a command printed as the key of each record.
	array := func(field string) func(t *testing.T, out string) []string {
		return func(t *testing.T, out string) []string {
			var recs []map[string]any
			if err := json.Unmarshal([]byte(out), &recs); err != nil {
				t.Fatalf("%v\n%.500s", err, out)
			}
			keys := make([]string, len(recs))
			for i, r := range recs {
				keys[i] = fmt.Sprint(r[field])
			}
			return keys
		}
	}
	lines := func(t *testing.T, out string) []string {
		var keys []string
		for l := range strings.Lines(out) {
			var e struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%v: %q", err, l)
			}
			keys = append(keys, fmt.Sprint(e.Seq))
		}
		return keys
	}
	for _, tc := range []struct {
		args []string
		keys func(t *testing.T, out string) []string
		want int
	}{
		// A --limit past the end ends the listing where the records do.
		{[]string{"users", "list", "--limit", fmt.Sprint(n + 1)}, array("id"), n},
		{[]string{"users", "list", "--limit", fmt.Sprint(n - 2)}, array("id"), n - 2},
		{[]string{"tombstones", "list", "--limit", fmt.Sprint(n + 1)}, array("subject"), n},
		{[]string{"tombstones", "list", "--limit", fmt.Sprint(n - 2)}, array("subject"), n - 2},
		{[]string{"audit"}, lines, n},
		{[]string{"audit", "--limit", fmt.Sprint(n - 2)}, lines, n - 2},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := mustCLI(t, append(tc.args, "--json", "--store", path)...)
			keys := tc.keys(t, out)
			seen := map[string]bool{}
			for _, k := range keys {
				if seen[k] {
					t.Fatalf("printed %s twice (%d records printed)", k, len(keys))
				}
				seen[k] = true
			}
			if len(keys) != tc.want {
				t.Errorf("printed %d records, want %d", len(keys), tc.want)
			}
		})
	}
}
