package bolt

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

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
