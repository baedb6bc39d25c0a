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

// checkIndexes recomputes every index and counter from the primary
// records (users, groups, sessions) and fails on any difference: the
// invariant every write must keep. It also checks that each user's Groups
// holds the names of the groups they are a member of.
func checkIndexes(t testing.TB, db *DB) {
	t.Helper()
	snap := snapshot(t, db)
	want := map[string]map[string]string{}
	for _, b := range [][]byte{bucketLinks, bucketEmails, bucketUserSessions, bucketUserNames, bucketExternalIDs,
		bucketIdPUsers, bucketGroupNames, bucketGroupExternalIDs, bucketIdPGroups, bucketUserGroups, bucketCounts} {
		want[string(b)] = map[string]string{}
	}
	put := func(b []byte, k []byte, v string) { want[string(b)][string(k)] = v }
	counts := map[string]uint64{}
	users := map[string]store.User{}
	for id, raw := range snap[string(bucketUsers)] {
		var u store.User
		if err := json.Unmarshal([]byte(raw), &u); err != nil {
			t.Fatalf("decode user %s: %v", id, err)
		}
		users[id] = u
		if u.ID != id {
			t.Errorf("user stored under %q has ID %q", id, u.ID)
		}
		for _, l := range u.Links {
			put(bucketLinks, linkKey(l), id)
		}
		if u.Email != "" {
			put(bucketEmails, emailKey(u.Email), id)
		}
		if u.UserName != "" {
			put(bucketUserNames, userNameKey(u.UserName), id)
		}
		if u.ExternalID != "" {
			put(bucketExternalIDs, pair(u.IdP, u.ExternalID), id)
		}
		put(bucketIdPUsers, pair(u.IdP, id), "")
		counts[string(pair(countUsers, u.IdP))]++
	}
	memberOf := map[string][]string{} // user ID -> group names
	for id, raw := range snap[string(bucketGroups)] {
		var g store.Group
		if err := json.Unmarshal([]byte(raw), &g); err != nil {
			t.Fatalf("decode group %s: %v", id, err)
		}
		if g.ID != id {
			t.Errorf("group stored under %q has ID %q", id, g.ID)
		}
		if !slices.IsSorted(g.Members) || len(slices.Compact(slices.Clone(g.Members))) != len(g.Members) {
			t.Errorf("group %s members not sorted and unique: %v", id, g.Members)
		}
		put(bucketGroupNames, groupNameKey(g.IdP, g.DisplayName), id)
		if g.ExternalID != "" {
			put(bucketGroupExternalIDs, pair(g.IdP, g.ExternalID), id)
		}
		put(bucketIdPGroups, pair(g.IdP, id), "")
		counts[string(pair(countGroups, g.IdP))]++
		for _, m := range g.Members {
			if _, ok := users[m]; !ok {
				t.Errorf("group %s has missing member %s", id, m)
			}
			put(bucketUserGroups, pair(m, id), g.DisplayName)
			memberOf[m] = append(memberOf[m], g.DisplayName)
		}
	}
	for k, n := range counts {
		put(bucketCounts, []byte(k), string(u64(n)))
	}
	for hash, raw := range snap[string(bucketSessions)] {
		var s store.Session
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatalf("decode session: %v", err)
		}
		if _, ok := snap[string(bucketUsers)][s.UserID]; !ok {
			t.Errorf("session %s belongs to missing user %s", hash, s.UserID)
		}
		put(bucketUserSessions, pair(s.UserID, hash), "")
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if got := snap[name]; !maps.Equal(got, want[name]) {
			t.Errorf("%s index = %q, want %q", name, got, want[name])
		}
	}
	for id, names := range memberOf {
		for _, n := range names {
			if !slices.Contains(users[id].Groups, n) {
				t.Errorf("user %s is a member of group %q but Groups = %v", id, n, users[id].Groups)
			}
		}
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
