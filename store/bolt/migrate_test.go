package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// v1User is a user record as schema version 1 wrote it.
type v1User struct {
	ID     string       `json:"id"`
	Email  string       `json:"email"`
	Active bool         `json:"active"`
	Source string       `json:"source"`
	Links  []store.Link `json:"links,omitempty"`
	// UserName is not a version 1 field; a test sets it to mimic a record
	// an interrupted migration already rewrote.
	UserName string `json:"user_name,omitempty"`
}

// writeV1 builds a version 1 file the way a version 1 build left it,
// plus whatever extra does to it.
func writeV1(t *testing.T, path string, users []v1User, extra func(*bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(btx *bolt.Tx) error {
		meta, err := btx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte("1")); err != nil {
			return err
		}
		for _, name := range v1Buckets() {
			if _, err := btx.CreateBucket(name); err != nil {
				return err
			}
		}
		for _, u := range users {
			data, _ := json.Marshal(u)
			if err := btx.Bucket(bucketUsers).Put([]byte(u.ID), data); err != nil {
				return err
			}
			for _, l := range u.Links {
				if err := btx.Bucket(bucketLinks).Put(linkKey(l), []byte(u.ID)); err != nil {
					return err
				}
			}
			if u.Email != "" {
				if err := btx.Bucket(bucketEmails).Put(emailKey(u.Email), []byte(u.ID)); err != nil {
					return err
				}
			}
		}
		if extra != nil {
			return extra(btx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	users := []v1User{
		{ID: "u1", Email: "a@x.io", Active: true, Source: store.SourceJIT,
			Links: []store.Link{{IdP: "okta", Subject: "s1"}, {IdP: "entra", Subject: "e1"}}},
		{ID: "u2", Email: "b@x.io", Active: true, Source: store.SourceAdmin},
		// Rewritten by an interrupted migration with a name u1 claims first.
		{ID: "u3", Email: "c@x.io", Active: true, Source: store.SourceJIT, UserName: "A@X.IO",
			Links: []store.Link{{IdP: "entra", Subject: "e3"}}},
	}
	// Enough users for several migration transactions.
	for i := range 2*migrateChunk + 1 {
		users = append(users, v1User{ID: fmt.Sprintf("v%06d", i), Email: fmt.Sprintf("v%d@x.io", i), Active: true,
			Source: store.SourceJIT, Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint("v", i)}}})
	}
	writeV1(t, path, users, func(btx *bolt.Tx) error {
		// Leftovers of an interrupted migration: a stale index entry.
		b, err := btx.CreateBucket(bucketUserNames)
		if err != nil {
			return err
		}
		return b.Put([]byte("ghost@x.io"), []byte("ghost"))
	})

	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrOldSchema) {
		t.Fatalf("read-only open of a v1 file: %v, want ErrOldSchema", err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		want := map[string][3]string{ // id -> IdP, ExternalID, UserName
			"u1":      {"okta", "s1", "a@x.io"},
			"u2":      {"", "", "b@x.io"},
			"u3":      {"entra", "e3", ""},
			"v000007": {"okta", "v7", "v7@x.io"},
		}
		for id, w := range want {
			u, err := tx.User(id)
			if err != nil {
				return err
			}
			if got := [3]string{u.IdP, u.ExternalID, u.UserName}; got != w {
				t.Errorf("%s: IdP, ExternalID, UserName = %q, want %q", id, got, w)
			}
		}
		if _, err := tx.UserByUserName("ghost@x.io"); !isNotFound(err) {
			t.Errorf("stale index entry survived: %v", err)
		}
		if u, err := tx.UserByExternalID("okta", "s1"); err != nil || u.ID != "u1" {
			t.Errorf("external id lookup after migration: %v", err)
		}
		if _, total, _ := tx.ListUsers("okta", 1, 1); total != 2*migrateChunk+2 {
			t.Errorf("okta users = %d", total)
		}
		return nil
	})
	db.Close()

	// Reopening a migrated file commits nothing (Close commits once, to
	// write the free-page list).
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := commitID(t, db)
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if after := commitID(t, db); after != before+1 {
		t.Errorf("close and reopen committed %d transactions, want 1", after-before)
	}
	var version string
	_ = db.bdb.View(func(btx *bolt.Tx) error {
		version = string(btx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	if version != strconv.Itoa(SchemaVersion) {
		t.Errorf("schema version = %q", version)
	}
}

func TestOldBuildRefusesMigratedFile(t *testing.T) {
	// A version 3 build checks "schema > 3"; this one's number must be
	// above that so the refusal protects the session records that carry
	// AuthTime, which its decoder cannot read.
	if SchemaVersion <= 3 {
		t.Fatal("SchemaVersion must be above 3")
	}
	db := openTest(t)
	_ = db.bdb.View(func(btx *bolt.Tx) error {
		if v := string(btx.Bucket(bucketMeta).Get(keySchema)); v != strconv.Itoa(SchemaVersion) {
			t.Errorf("new file has schema %q", v)
		}
		return nil
	})
}

// writeV3 builds a schema 3 file the way the previous release left it: its
// layout is this build's, so the current code writes it and the version
// goes back to 3 (TestUpgradeFromSchema3). It holds a record in every
// bucket of records, user u1 signed in at okta as s1.
func writeV3(t *testing.T, path string) {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	putUser(t, db, &store.User{ID: "u1", Email: "a@x.io", Active: true, IdP: "okta", Links: []store.Link{{IdP: "okta", Subject: "s1"}}})
	update(t, db, func(tx store.Tx) error {
		if err := tx.PutGroup(&store.Group{ID: "g1", IdP: "okta", DisplayName: "Ops", Members: []string{"u1"}}); err != nil {
			return err
		}
		if err := tx.PutTombstone(&store.Tombstone{IdP: "okta", Subject: "gone", UserID: "u0", Deleted: t0}); err != nil {
			return err
		}
		if err := tx.PutSession(&store.Session{Hash: "h1", UserID: "u1", IdP: "okta", Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0,
			Logout: store.LogoutInfo{Subject: "s1", SessionID: "sid1"}}); err != nil {
			return err
		}
		if err := tx.PutSessionTokens("h1", []byte("sealed")); err != nil {
			return err
		}
		if _, err := tx.Consume("state", "x", t0.Add(time.Hour)); err != nil {
			return err
		}
		if _, err := tx.LoadOrStoreSecret("flow-cookie-key", []byte("k")); err != nil {
			return err
		}
		return tx.Audit(store.Event{Time: t0, Type: store.EventLoginSucceeded, UserID: "u1"})
	})
	if err := db.bdb.Update(func(btx *bolt.Tx) error { return btx.Bucket(bucketMeta).Put(keySchema, []byte("3")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// fileSchema returns the schema version in path's meta bucket and whether
// the file has bucket name, read with bbolt alone.
func fileSchema(t *testing.T, path string, name []byte) (version string, has bool) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	_ = bdb.View(func(btx *bolt.Tx) error {
		version, has = string(btx.Bucket(bucketMeta).Get(keySchema)), btx.Bucket(name) != nil
		return nil
	})
	return version, has
}

// TestOldFileLackingABucket: a file of an older schema that lost a bucket
// is treated as a file of this schema would be (TestSchemaChecks): one of
// records is refused as damaged, read-only or not, and left as it was,
// neither recreated empty by the upgrade (users gone, their groups and
// sessions kept) nor stamped current without it (a panic at first use);
// an index comes out rebuilt by the upgrade. Each case deletes one bucket
// the old build's file holds.
func TestOldFileLackingABucket(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	writers := []struct {
		version int
		write   func(t *testing.T, path string)
	}{
		{1, func(t *testing.T, path string) {
			writeV1(t, path, []v1User{{ID: "u1", Email: "a@x.io", Active: true, Source: store.SourceJIT,
				Links: []store.Link{{IdP: "okta", Subject: "s1"}}}}, nil)
		}},
		{2, func(t *testing.T, path string) {
			s := v2Session{UserID: "u1", IdP: "okta", Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0}
			s.Logout.IDToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzMSJ9.sig"
			writeV2(t, path, v2File{
				users: []store.User{{ID: "u1", Email: "a@x.io", UserName: "a@x.io", IdP: "okta", Active: true, Groups: []string{"Ops"},
					Links: []store.Link{{IdP: "okta", Subject: "s1"}}}},
				groups:   []store.Group{{ID: "g1", IdP: "okta", DisplayName: "Ops", Members: []string{"u1"}}},
				sessions: map[string]v2Session{"h1": s},
				consumed: map[string]time.Time{string(pair("state", "x")): t0.Add(time.Hour)},
				events:   []store.Event{{Seq: 1, Time: t0, Type: store.EventLoginSucceeded, UserID: "u1"}},
			})
		}},
		{3, writeV3},
	}
	for _, w := range writers {
		// The buckets the old build's file holds, as written.
		var names [][]byte
		probe := filepath.Join(t.TempDir(), "probe.db")
		w.write(t, probe)
		withBolt(t, probe, func(btx *bolt.Tx) error {
			return btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				if !bytes.Equal(name, bucketMeta) {
					names = append(names, bytes.Clone(name))
				}
				return nil
			})
		})
		for _, name := range names {
			records := holds(primaryBuckets(), name)
			t.Run(fmt.Sprintf("v%d without %s", w.version, name), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "sso.db")
				w.write(t, path)
				withBolt(t, path, func(btx *bolt.Tx) error { return btx.DeleteBucket(name) })

				_, roErr := Open(path, Options{ReadOnly: true})
				db, err := Open(path, Options{})
				if records {
					if err == nil {
						db.Close()
					}
					for what, err := range map[string]error{"read-only open": roErr, "open": err} {
						if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "lacks bucket "+string(name)+", which holds records") ||
							!strings.Contains(err.Error(), "caddy sso restore") {
							t.Errorf("%s: %v, want ErrDamaged naming bucket %s and the restore", what, err, name)
						}
					}
					if v, has := fileSchema(t, path, name); v != strconv.Itoa(w.version) || has {
						t.Errorf("the refused file has schema %s, bucket %s present %v; want it left at %d without it", v, name, has, w.version)
					}
					return
				}
				if !errors.Is(roErr, ErrOldSchema) {
					t.Errorf("read-only open: %v, want ErrOldSchema", roErr)
				}
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				closed := false
				defer func() {
					if !closed {
						db.Close()
					}
				}()
				// Check first: with the bucket still missing, the lookups
				// below would panic.
				r, err := db.Check(context.Background())
				if err != nil || len(r.Problems) > 0 {
					t.Fatalf("check after the upgrade: %v, %q", err, r.Problems)
				}
				checkIndexes(t, db)
				view(t, db, func(tx store.Tx) error {
					if u, err := tx.UserByLink("okta", "s1"); err != nil || u.ID != "u1" {
						t.Errorf("UserByLink after the upgrade: %+v, %v", u, err)
					}
					if c, err := tx.Counts(); err != nil || c.Users != 1 {
						t.Errorf("counts after the upgrade: %+v, %v", c, err)
					}
					return nil
				})
				closed = true
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				if v, _ := fileSchema(t, path, name); v != strconv.Itoa(SchemaVersion) {
					t.Errorf("schema after the upgrade: %s", v)
				}
			})
		}
	}
}

// TestReindexCreatesOnlyWhatTheSourceLacked: the rebuild creates the
// buckets of records its source schema did not have, and refuses one the
// source had and lost rather than recreating it empty (checkSchema refuses
// such a file before; this is the rebuild's own guard).
func TestReindexCreatesOnlyWhatTheSourceLacked(t *testing.T) {
	tests := []struct {
		from    int
		lost    []byte
		damaged bool
	}{
		{2, bucketUsers, true},
		{2, bucketSessionSeen, false}, // schema 3 brought it
		{3, bucketTombstones, true},
		{SchemaVersion, bucketAudit, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("from %d without %s", tt.from, tt.lost), func(t *testing.T) {
			db := openTest(t)
			putUser(t, db, &store.User{ID: "u1", Email: "a@x.io", Active: true, IdP: "okta", Links: []store.Link{{IdP: "okta", Subject: "s1"}}})
			if err := db.bdb.Update(func(btx *bolt.Tx) error { return btx.DeleteBucket(tt.lost) }); err != nil {
				t.Fatal(err)
			}
			err := db.migrate(tt.from, true)
			if !tt.damaged {
				if err != nil {
					t.Fatalf("migrate: %v", err)
				}
				checkIndexes(t, db)
				return
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "lacks bucket "+string(tt.lost)) {
				t.Errorf("migrate: %v, want ErrDamaged naming bucket %s", err, tt.lost)
			}
			_ = db.bdb.View(func(btx *bolt.Tx) error {
				if btx.Bucket(tt.lost) != nil {
					t.Errorf("bucket %s was recreated", tt.lost)
				}
				return nil
			})
		})
	}
}
