package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestUpgradeFromSchema3: a schema 3 file (the previous release's) opened
// read-write becomes schema 4 in one transaction, its records untouched,
// so that a schema 3 build refuses it from then on rather than failing on
// the session records that now carry AuthTime; opened read-only first, it
// is refused with the one-time-upgrade message, as the upgrade to 3 was.
func TestUpgradeFromSchema3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	u := &store.User{Email: "ada@example.com", Active: true}
	putUser(t, db, u)
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h1", UserID: u.ID, IdP: "okta", Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0})
	})
	// What the previous release left: the same layout, version 3.
	if err := db.bdb.Update(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketMeta).Put(keySchema, []byte("3"))
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrOldSchema) {
		t.Fatalf("read-only open of a schema 3 file: %v, want ErrOldSchema", err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.bdb.View(func(btx *bolt.Tx) error {
		if v := string(btx.Bucket(bucketMeta).Get(keySchema)); v != strconv.Itoa(SchemaVersion) || SchemaVersion != 4 {
			t.Errorf("after the upgrade: schema %q, want 4", v)
		}
		return nil
	})
	err = db.View(context.Background(), func(tx store.Tx) error {
		s, err := tx.Session("h1")
		if err != nil || s.UserID != u.ID || !s.Created.Equal(t0) || !s.AuthTime.IsZero() {
			t.Errorf("the schema 3 session after the upgrade: %+v, %v", s, err)
		}
		if got, err := tx.User(u.ID); err != nil || got.Email != u.Email {
			t.Errorf("the schema 3 user after the upgrade: %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h2", UserID: u.ID, IdP: "okta", Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0, AuthTime: t0.Add(-time.Minute)})
	})
}
