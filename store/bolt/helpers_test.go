package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// openTest opens a fresh store in a temporary directory and closes it when
// the test ends.
func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "sub", "sso.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func update(t testing.TB, db *DB, fn func(store.Tx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t testing.TB, db *DB, fn func(store.Tx) error) {
	t.Helper()
	if err := db.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func putUser(t testing.TB, db *DB, u *store.User) {
	t.Helper()
	update(t, db, func(tx store.Tx) error { return tx.PutUser(u) })
}

// snapshot dumps every bucket, raw, so tests can assert that a failed
// operation changed nothing at all and that a backup equals its source.
func snapshot(t testing.TB, db *DB) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	err := db.bdb.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return out
}

func sameSnapshot(t testing.TB, want, got map[string]map[string]string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !maps.Equal(want[name], got[name]) {
			t.Errorf("bucket %s changed:\nbefore %q\nafter  %q", name, want[name], got[name])
		}
	}
	if len(want) != len(got) {
		t.Errorf("bucket count changed: %d -> %d", len(want), len(got))
	}
}

// checkIndexes recomputes the links, emails and user_sessions buckets from
// the primary records and fails on any difference: the invariant every
// write must keep.
func checkIndexes(t testing.TB, db *DB) {
	t.Helper()
	snap := snapshot(t, db)
	wantLinks := map[string]string{}
	wantEmails := map[string]string{}
	for id, raw := range snap[string(bucketUsers)] {
		var u store.User
		if err := json.Unmarshal([]byte(raw), &u); err != nil {
			t.Fatalf("decode user %s: %v", id, err)
		}
		if u.ID != id {
			t.Errorf("user stored under %q has ID %q", id, u.ID)
		}
		for _, l := range u.Links {
			wantLinks[string(linkKey(l))] = id
		}
		if u.Email != "" {
			wantEmails[string(emailKey(u.Email))] = id
		}
	}
	wantUS := map[string]string{}
	for hash, raw := range snap[string(bucketSessions)] {
		var s store.Session
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatalf("decode session: %v", err)
		}
		if _, ok := snap[string(bucketUsers)][s.UserID]; !ok {
			t.Errorf("session %s belongs to missing user %s", hash, s.UserID)
		}
		wantUS[string(pair(s.UserID, hash))] = ""
	}
	if got := snap[string(bucketLinks)]; !maps.Equal(got, wantLinks) {
		t.Errorf("links index = %q, want %q", got, wantLinks)
	}
	if got := snap[string(bucketEmails)]; !maps.Equal(got, wantEmails) {
		t.Errorf("emails index = %q, want %q", got, wantEmails)
	}
	if got := snap[string(bucketUserSessions)]; !maps.Equal(got, wantUS) {
		t.Errorf("user_sessions index = %q, want %q", got, wantUS)
	}
}

// sameJSON compares records by their stored form, which is what survives a
// round trip (time zones and monotonic clock readings do not).
func sameJSON(t testing.TB, what string, want, got any) {
	t.Helper()
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if string(w) != string(g) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
