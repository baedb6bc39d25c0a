package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// checkOK fails the test unless Check finds the store consistent.
func checkOK(t testing.TB, db *DB) {
	t.Helper()
	r, err := db.Check(context.Background())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !r.OK() {
		t.Errorf("Check found problems in a consistent store:\n%s", strings.Join(r.Problems, "\n"))
	}
}

// checkStore is a small store with one of everything.
func checkStore(t *testing.T) *DB {
	db := openTest(t)
	u := &store.User{ID: "u1", Email: "a@x.io", UserName: "ada", IdP: "entra", ExternalID: "e1",
		Links: []store.Link{{IdP: "entra", Subject: "s1"}}}
	putUser(t, db, u)
	putUser(t, db, &store.User{ID: "u2", Email: "b@x.io", IdP: "entra"})
	update(t, db, func(tx store.Tx) error {
		if err := tx.PutGroup(&store.Group{ID: "g1", IdP: "entra", DisplayName: "Ops", ExternalID: "ge", Members: []string{"u1"}}); err != nil {
			return err
		}
		now := time.Now()
		if err := tx.PutSession(&store.Session{Hash: "h1", UserID: "u1", IdP: "entra", Created: now, Expires: now.Add(time.Hour),
			LastSeen: now, Logout: store.LogoutInfo{Subject: "s1", SessionID: "sid1"}}); err != nil {
			return err
		}
		if err := tx.PutSessionTokens("h1", []byte("t")); err != nil {
			return err
		}
		if _, err := tx.Consume("state", "x", now.Add(time.Hour)); err != nil {
			return err
		}
		if err := tx.PutTombstone(&store.Tombstone{IdP: "entra", Subject: "gone"}); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventUserCreated, UserID: "u1"})
	})
	return db
}

func TestCheckFindsDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(*bolt.Tx) error
		want   string // in one of the problems
	}{
		{"link entry gone", func(b *bolt.Tx) error { return b.Bucket(bucketLinks).Delete(pair("entra", "s1")) }, "links: no link entry"},
		{"email entry points elsewhere", func(b *bolt.Tx) error { return b.Bucket(bucketEmails).Put(emailKey("a@x.io"), []byte("u2")) }, "emails: entry"},
		{"entry for a missing user", func(b *bolt.Tx) error { return b.Bucket(bucketUserNames).Put([]byte("ghost"), []byte("nobody")) }, "which does not exist"},
		{"externalId entry for a value the user lacks", func(b *bolt.Tx) error {
			return b.Bucket(bucketExternalIDs).Put(pair("entra", "other"), []byte("u1"))
		}, "who does not have that value"},
		{"user counter off", func(b *bolt.Tx) error { return b.Bucket(bucketCounts).Put(pair(countUsers, "entra"), u64(5)) }, "counts: users"},
		{"session counter off", func(b *bolt.Tx) error { return b.Bucket(bucketCounts).Delete(pair(countSessions, "")) }, "counts: sessions"},
		{"group name entry gone", func(b *bolt.Tx) error { return b.Bucket(bucketGroupNames).Delete(groupNameKey("entra", "Ops")) }, "group_names: no name entry"},
		{"membership without member", func(b *bolt.Tx) error { return b.Bucket(bucketUserGroups).Put(pair("u2", "g1"), []byte("Ops")) }, "is not a member"},
		// A stray entry naming the group as it was called before a rename:
		// the pass over the entries reports it by its name (the pass that
		// names non-members skips an entry with the wrong name as reported).
		{"membership without member, under an old group name", func(b *bolt.Tx) error {
			return b.Bucket(bucketUserGroups).Put(pair("u2", "g1"), []byte("Old Ops"))
		}, `names no group called "Old Ops"`},
		// As many entries as memberships, one missing and one stray: the
		// count matches, and the stray one is reported all the same.
		{"membership entry moved to a non-member", func(b *bolt.Tx) error {
			if err := b.Bucket(bucketUserGroups).Delete(pair("u1", "g1")); err != nil {
				return err
			}
			return b.Bucket(bucketUserGroups).Put(pair("u2", "g1"), []byte("Ops"))
		}, "user u2 is not a member of group g1"},
		{"session expiry entry gone", func(b *bolt.Tx) error {
			k := b.Bucket(bucketSessionExpiry).Cursor()
			key, _ := k.First()
			return b.Bucket(bucketSessionExpiry).Delete(key)
		}, "session_expiry: no entry"},
		{"subject entry for a missing session", func(b *bolt.Tx) error {
			return b.Bucket(bucketSessionSubjects).Put(pair("entra", string(pair("s1", "h9"))), []byte{})
		}, "session_subjects: entry"},
		{"tokens of a missing session", func(b *bolt.Tx) error { return b.Bucket(bucketSessionTokens).Put([]byte("h9"), []byte("t")) }, "session_tokens: entry for session"},
		{"user record gone", func(b *bolt.Tx) error { return b.Bucket(bucketUsers).Delete([]byte("u2")) }, "idp_users"},
		// A key whose length prefix runs past its end: reported, not a
		// panic of the check.
		{"idp_users key cut short", func(b *bolt.Tx) error { return b.Bucket(bucketIdPUsers).Put([]byte{0x7f, 'e'}, []byte{}) }, "idp_users: entry"},
		{"single-use ID without its expiry entry", func(b *bolt.Tx) error {
			return b.Bucket(bucketConsumed).Put(pair("state", "y"), u64(encTime(time.Now())))
		}, "consumed_until: no expiry entry"},
		{"audit index entry for another user", func(b *bolt.Tx) error {
			return b.Bucket(bucketAuditByUser).Put(append(pair("u2", ""), u64(1)...), []byte{})
		}, "audit_by_user: entry"},
		{"record does not decode", func(b *bolt.Tx) error { return b.Bucket(bucketSessions).Put([]byte("h2"), []byte("junk")) }, "does not decode"},
		{"missing bucket", func(b *bolt.Tx) error { return b.DeleteBucket(bucketSessionIdle) }, "bucket session_idle is missing"},
		// Below: damage whose problem, as each row words it, only one check
		// reports (mutation testing showed the other checks miss it).
		{"upgrade mark left", func(b *bolt.Tx) error {
			return b.Bucket(bucketMeta).Put(keyUpgrading, []byte(strconv.Itoa(SchemaVersion)))
		}, "an upgrade did not finish"},
		{"user record under another ID", func(b *bolt.Tx) error {
			return editRecord(b, bucketUsers, "u2", func(u *store.User) { u.ID = "u3" })
		}, `users: record under "u2" has ID "u3"`},
		{"group record under another ID", func(b *bolt.Tx) error {
			return editRecord(b, bucketGroups, "g1", func(g *store.Group) { g.ID = "g9" })
		}, `groups: record under "g1" has ID "g9"`},
		{"group name entry for a name the group lacks", func(b *bolt.Tx) error {
			return b.Bucket(bucketGroupNames).Put(groupNameKey("entra", "Old Ops"), []byte("g1"))
		}, "which does not have that value"},
		{"IdP entry of a user gone", func(b *bolt.Tx) error { return b.Bucket(bucketIdPUsers).Delete(pair("entra", "u2")) }, "idp_users: no IdP entry"},
		{"IdP entry of a group gone", func(b *bolt.Tx) error { return b.Bucket(bucketIdPGroups).Delete(pair("entra", "g1")) }, "idp_groups: no IdP entry"},
		{"user listed under another IdP", func(b *bolt.Tx) error { return b.Bucket(bucketIdPUsers).Put(pair("okta", "u2"), []byte{}) }, `idp_users: entry "`},
		{"group listed under another IdP", func(b *bolt.Tx) error { return b.Bucket(bucketIdPGroups).Put(pair("okta", "g1"), []byte{}) }, `idp_groups: entry "`},
		{"group member who does not exist", func(b *bolt.Tx) error {
			if err := editRecord(b, bucketGroups, "g1", func(g *store.Group) { g.Members = []string{"u1", "u9"} }); err != nil {
				return err
			}
			return b.Bucket(bucketUserGroups).Put(pair("u9", "g1"), []byte("Ops"))
		}, "group g1 has member u9, who does not exist"},
		{"session of a user who does not exist", func(b *bolt.Tx) error { return b.Bucket(bucketUsers).Delete([]byte("u1")) }, "session h1 belongs to user u1, who does not exist"},
		{"session created at another time than its last-seen entry says", func(b *bolt.Tx) error {
			seen := b.Bucket(bucketSessionSeen)
			last, created, ok := decodeSeen(seen.Get([]byte("h1")))
			if !ok {
				return fmt.Errorf("session_seen entry of h1 does not decode")
			}
			return seen.Put([]byte("h1"), binary.BigEndian.AppendUint64(u64(last), created-1))
		}, "session_seen: no valid entry for session h1"},
		{"second expiry entry of a session", func(b *bolt.Tx) error {
			return b.Bucket(bucketSessionExpiry).Put(timeKey(encTime(time.Unix(1, 0)), "h1"), []byte{})
		}, "matches no session"},
		{"single-use ID indexed under another expiry", func(b *bolt.Tx) error {
			return b.Bucket(bucketConsumedUntil).Put(timeKey(encTime(time.Unix(1, 0)), string(pair("state", "x"))), []byte{})
		}, "consumed_until: entry"},
		{"audit index entry gone", func(b *bolt.Tx) error {
			k, _ := b.Bucket(bucketAuditByUser).Cursor().First()
			return b.Bucket(bucketAuditByUser).Delete(k)
		}, "audit_by_user: no user entry"},
		// Two users with one email, the second unindexed (what an upgrade
		// leaves when folding newly equates two names): only the entry's
		// pointer tells.
		{"second user with an indexed email", func(b *bolt.Tx) error {
			if err := editRecord(b, bucketUsers, "u2", func(u *store.User) { u.Email = "A@x.io" }); err != nil {
				return err
			}
			return b.Bucket(bucketEmails).Delete(emailKey("b@x.io"))
		}, `emails: entry "a@x.io" for the email of u2 points at "u1"`},
		{"counter of an IdP without users", func(b *bolt.Tx) error { return b.Bucket(bucketCounts).Put(pair(countUsers, "okta"), u64(1)) }, `counts: users of "okta" is 1, the records say 0`},
		{"counter one byte too long", func(b *bolt.Tx) error {
			return b.Bucket(bucketCounts).Put(pair(countUsers, "entra"), append(u64(2), 0))
		}, "counts: entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := checkStore(t)
			checkOK(t, db)
			if err := db.bdb.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			r, err := db.Check(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() || !strings.Contains(strings.Join(r.Problems, "\n"), tt.want) {
				t.Errorf("Check after damage: %q, want a problem with %q", r.Problems, tt.want)
			}
		})
	}
}

// editRecord decodes the JSON record under key in bucket name, lets edit
// change it, and puts it back: damage that leaves every index as it was.
func editRecord[T any](b *bolt.Tx, name []byte, key string, edit func(*T)) error {
	v := new(T)
	if err := json.Unmarshal(b.Bucket(name).Get([]byte(key)), v); err != nil {
		return err
	}
	edit(v)
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Bucket(name).Put([]byte(key), raw)
}

func TestCheckCountsAndCancel(t *testing.T) {
	db := checkStore(t)
	r, err := db.Check(context.Background())
	if err != nil || !r.OK() {
		t.Fatalf("Check = %+v, %v", r, err)
	}
	if want := (store.Counts{Users: 2, Groups: 1, Sessions: 1, Tombstones: 1, AuditEvents: 1}); r.Records != want || r.Schema != SchemaVersion {
		t.Errorf("Records = %+v, schema %d", r.Records, r.Schema)
	}
	update(t, db, func(tx store.Tx) error {
		for i := range 20_000 {
			if _, err := tx.Consume("state", string(rune('a'+i%26))+strings.Repeat("x", i%100)+string(rune(i)), time.Now().Add(time.Hour)); err != nil {
				return err
			}
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Check(ctx); err == nil {
		t.Error("Check ran to the end on a cancelled context")
	}
}

// TestCheckCapsProblems: a badly damaged store's report lists the first
// maxProblems problems and counts the rest, so `caddy sso check --store`
// and the admin API do not print or send one line per damaged record.
func TestCheckCapsProblems(t *testing.T) {
	db := checkStore(t)
	const stray = maxProblems + 50
	if err := db.bdb.Update(func(b *bolt.Tx) error {
		for i := range stray {
			if err := b.Bucket(bucketUserNames).Put(fmt.Appendf(nil, "ghost%03d", i), []byte("nobody")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r, err := db.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != maxProblems || r.More != stray-maxProblems {
		t.Errorf("Check of %d damaged entries: %d problems listed, %d more; want %d and %d", stray, len(r.Problems), r.More, maxProblems, stray-maxProblems)
	}
}

// A time-index entry without its session (damage) does not stop sweeps:
// the sweep that reaches it drops it.
func TestSweepDropsDanglingEntry(t *testing.T) {
	db := checkStore(t)
	if err := db.bdb.Update(func(b *bolt.Tx) error {
		return b.Bucket(bucketSessionExpiry).Put(timeKey(encTime(time.Unix(1, 0)), "gone"), []byte{})
	}); err != nil {
		t.Fatal(err)
	}
	update(t, db, func(tx store.Tx) error {
		got, err := tx.DeleteExpiredSessions(time.Now(), 0, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("sweep over a dangling entry = %v, %v", got, err)
		}
		return nil
	})
	checkOK(t, db)
}

// TestCountersStopAtZero: in a store whose counters are off (lost, as
// Check reports them), a delete that would take one below zero leaves it
// at zero, so Counts and ListUsers' total never report a negative (or,
// read as unsigned, enormous) number of records.
func TestCountersStopAtZero(t *testing.T) {
	db := checkStore(t)
	if err := db.bdb.Update(func(b *bolt.Tx) error {
		for _, k := range [][]byte{pair(countUsers, "entra"), pair(countSessions, ""), pair(countTombstones, "")} {
			if err := b.Bucket(bucketCounts).Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	update(t, db, func(tx store.Tx) error {
		if err := tx.DeleteSession("h1"); err != nil {
			return err
		}
		if err := tx.DeleteTombstone("entra", "gone"); err != nil {
			return err
		}
		return tx.DeleteUser("u2")
	})
	view(t, db, func(tx store.Tx) error {
		c, err := tx.Counts()
		if err != nil {
			return err
		}
		if c.Users != 0 || c.Sessions != 0 || c.Tombstones != 0 {
			t.Errorf("Counts after deletes past zero = %+v, want 0 users, sessions and tombstones", c)
		}
		if _, total, err := tx.ListUsers("entra", 1, 10); err != nil || total != 0 {
			t.Errorf("ListUsers total = %d, %v; want 0", total, err)
		}
		return nil
	})
	if err := db.bdb.View(func(b *bolt.Tx) error {
		for _, k := range [][]byte{pair(countUsers, "entra"), pair(countSessions, ""), pair(countTombstones, "")} {
			if v := b.Bucket(bucketCounts).Get(k); v != nil {
				t.Errorf("counter %q = %x after reaching zero, want no key", k, v)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCheckLargeGroup: `caddy sso check --store` of a store holding a
// directory's group of 10,000 members decodes the group once, not once per
// membership entry (10,000 times).
func BenchmarkCheckLargeGroup(b *testing.B) {
	db := openTest(b)
	const n = 10_000
	members := make([]string, n)
	update(b, db, func(tx store.Tx) error {
		for i := range n {
			u := &store.User{Email: fmt.Sprintf("u%d@x.io", i), IdP: "entra", ExternalID: fmt.Sprintf("e%d", i)}
			if err := tx.PutUser(u); err != nil {
				return err
			}
			members[i] = u.ID
		}
		slices.Sort(members)
		return tx.PutGroup(&store.Group{ID: "all", IdP: "entra", DisplayName: "All staff", Members: members})
	})
	b.ResetTimer()
	for b.Loop() {
		if r, err := db.Check(context.Background()); err != nil || !r.OK() {
			b.Fatalf("Check = %+v, %v", r, err)
		}
	}
}
