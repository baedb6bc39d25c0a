package bolt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// migrateChunk bounds the users one migration transaction rewrites: a
// single transaction over a million users would hold every dirty page of
// the users bucket in memory until its commit.
const migrateChunk = 5_000

// migrate upgrades a version 1 file to the current schema.
//
// Version 2 adds the SCIM indexes and fills the SCIM fields of existing
// users, so that Entra's match by externalId and Okta's by userName find
// users JIT created before the upgrade instead of creating duplicates:
// IdP and ExternalID come from the user's first link, UserName from the
// email. In ID order the first user to claim a userName or externalId gets
// it; a later one that collides keeps the field empty.
//
// The schema version moves to 2 only in the last transaction, so an
// interrupted migration leaves a version 1 file. The next open starts over
// from empty indexes: a version 1 build that opened the file meanwhile may
// have rewritten users without their new fields, and only a rebuild is
// sure to match the records.
func (db *DB) migrate(from int) error {
	if from != 1 {
		return fmt.Errorf("bolt: migrate %s: no migration from schema version %d", db.path, from)
	}
	err := db.bdb.Update(func(btx *bolt.Tx) error {
		for _, name := range v1Buckets() {
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		for _, name := range v2Buckets() {
			if btx.Bucket(name) != nil {
				if err := btx.DeleteBucket(name); err != nil {
					return fmt.Errorf("reset bucket %s: %w", name, err)
				}
			}
			if _, err := btx.CreateBucket(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: migrate %s to schema 2: %w", db.path, err)
	}

	var after []byte
	for {
		var n int
		err := db.bdb.Update(func(btx *bolt.Tx) error {
			t := &tx{btx: btx, writable: true}
			type rec struct{ id, raw []byte }
			var batch []rec
			c := t.bucket(bucketUsers).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			// Collect first: bbolt cursors do not survive writes to
			// their bucket.
			for ; k != nil && len(batch) < migrateChunk; k, v = c.Next() {
				batch = append(batch, rec{bytes.Clone(k), bytes.Clone(v)})
			}
			for _, r := range batch {
				if err := t.migrateUser(r.id, r.raw); err != nil {
					return err
				}
			}
			n = len(batch)
			if n > 0 {
				after = batch[n-1].id
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bolt: migrate %s to schema 2: %w", db.path, err)
		}
		if n < migrateChunk {
			break
		}
	}

	err = db.bdb.Update(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
	if err != nil {
		return fmt.Errorf("bolt: migrate %s: record schema version: %w", db.path, err)
	}
	return nil
}

// migrateUser fills one user's version 2 fields and index entries.
func (t *tx) migrateUser(id, raw []byte) error {
	u := new(store.User)
	if err := json.Unmarshal(raw, u); err != nil {
		return fmt.Errorf("decode user %s: %w", id, err)
	}
	changed := false
	if u.IdP == "" && len(u.Links) > 0 {
		u.IdP = u.Links[0].IdP
		changed = true
	}
	if u.ExternalID == "" && u.IdP != "" {
		for _, l := range u.Links {
			if l.IdP == u.IdP {
				u.ExternalID = l.Subject
				changed = true
				break
			}
		}
	}
	if u.UserName == "" && u.Email != "" {
		u.UserName = u.Email
		changed = true
	}
	if u.UserName != "" {
		b := t.bucket(bucketUserNames)
		if k := userNameKey(u.UserName); b.Get(k) != nil {
			u.UserName = ""
			changed = true
		} else if err := b.Put(k, id); err != nil {
			return fmt.Errorf("user %s: user name: %w", id, err)
		}
	}
	if u.ExternalID != "" {
		b := t.bucket(bucketExternalIDs)
		if k := pair(u.IdP, u.ExternalID); b.Get(k) != nil {
			u.ExternalID = ""
			changed = true
		} else if err := b.Put(k, id); err != nil {
			return fmt.Errorf("user %s: external id: %w", id, err)
		}
	}
	if err := t.bucket(bucketIdPUsers).Put(pair(u.IdP, string(id)), []byte{}); err != nil {
		return fmt.Errorf("user %s: idp index: %w", id, err)
	}
	if err := t.addCount(countUsers, u.IdP, 1); err != nil {
		return fmt.Errorf("user %s: count: %w", id, err)
	}
	if !changed {
		return nil
	}
	data, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode user %s: %w", id, err)
	}
	return t.bucket(bucketUsers).Put(id, data)
}
