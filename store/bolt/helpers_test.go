package bolt

import (
	"context"
	"encoding/binary"
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

// rehearsing reports whether fn was given tx in a rehearsal
// (rehearse.go), for test fns that block or record what ran.
func rehearsing(tx store.Tx) bool {
	_, ok := tx.(rehearsal)
	return ok
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
	for _, b := range derivedBuckets() {
		want[string(b)] = map[string]string{}
	}
	put := func(b []byte, k []byte, v string) { want[string(b)][string(k)] = v }
	// putFirst models a unique index: when two records claim one key (as
	// only an upgrade that folds names differently can make happen), the
	// first in ID order holds it.
	putFirst := func(b []byte, k []byte, id string) {
		if old, ok := want[string(b)][string(k)]; !ok || id < old {
			want[string(b)][string(k)] = id
		}
	}
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
			putFirst(bucketLinks, linkKey(l), id)
		}
		if u.Email != "" {
			putFirst(bucketEmails, emailKey(u.Email), id)
		}
		if u.UserName != "" {
			putFirst(bucketUserNames, userNameKey(u.UserName), id)
		}
		if u.ExternalID != "" {
			putFirst(bucketExternalIDs, pair(u.IdP, u.ExternalID), id)
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
		putFirst(bucketGroupNames, groupNameKey(g.IdP, g.DisplayName), id)
		if g.ExternalID != "" {
			putFirst(bucketGroupExternalIDs, pair(g.IdP, g.ExternalID), id)
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
	seenB := snap[string(bucketSessionSeen)]
	for hash, raw := range snap[string(bucketSessions)] {
		r, err := decodeSessionRec([]byte(raw))
		if err != nil {
			t.Fatalf("decode session: %v", err)
		}
		if _, ok := snap[string(bucketUsers)][r.UserID]; !ok {
			t.Errorf("session %s belongs to missing user %s", hash, r.UserID)
		}
		lastSeen, created, ok := decodeSeen([]byte(seenB[hash]))
		if !ok || created != r.Created {
			t.Errorf("session %s: last-seen value %x does not match the record", hash, seenB[hash])
		}
		k := keysOf(hash, r, lastSeen)
		for name, key := range map[string][]byte{
			string(bucketUserSessions): k.user, string(bucketSessionExpiry): k.expiry, string(bucketSessionIdle): k.idle,
			string(bucketSessionSubjects): k.subject, string(bucketSessionSIDs): k.sid,
		} {
			if key != nil {
				put([]byte(name), key, "")
			}
		}
		counts[string(pair(countSessions, ""))]++
	}
	for hash := range seenB {
		if _, ok := snap[string(bucketSessions)][hash]; !ok {
			t.Errorf("last-seen value of missing session %s", hash)
		}
	}
	for hash := range snap[string(bucketSessionTokens)] {
		if _, ok := snap[string(bucketSessions)][hash]; !ok {
			t.Errorf("tokens of missing session %s", hash)
		}
	}
	for k, v := range snap[string(bucketConsumed)] {
		put(bucketConsumedUntil, timeKey(binary.BigEndian.Uint64([]byte(v)), k), "")
	}
	counts[string(pair(countTombstones, ""))] = uint64(len(snap[string(bucketTombstones)]))
	for k, raw := range snap[string(bucketAudit)] {
		var e store.Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatalf("decode audit event: %v", err)
		}
		if e.UserID != "" {
			put(bucketAuditByUser, append(pair(e.UserID, ""), k...), "")
		}
		counts[string(pair(countAudit, ""))]++
	}
	for k, n := range counts {
		if n > 0 {
			put(bucketCounts, []byte(k), string(u64(n)))
		}
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
