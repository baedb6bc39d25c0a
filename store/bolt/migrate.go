package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// migrateChunk bounds the users one migration transaction rewrites: a
// single transaction over a million users would hold every dirty page of
// the users bucket in memory until its commit.
const migrateChunk = 5_000

// migrate upgrades a file of schema version from to the current schema;
// rebuild says its indexes must be rebuilt whatever its version (an
// upgrade was interrupted, or a bucket is missing).
func (db *DB) migrate(from int, rebuild bool) error {
	if from < 1 || from > SchemaVersion {
		return fmt.Errorf("bolt: migrate %s: no migration from schema version %d", db.path, from)
	}
	if from == 1 {
		if err := db.migrate1to2(); err != nil {
			return err
		}
		from = 2
	}
	if from == 3 && !rebuild {
		return db.migrate3to4()
	}
	return db.reindex(from)
}

// migrate3to4 is the upgrade to schema 4, which lets a session record
// carry when the person last authenticated at the IdP (store.Session
// AuthTime): eight bytes more, which a schema 3 build's decoder refuses.
// Every schema 3 record is a schema 4 record already, so only the version
// changes, in one transaction; a schema 3 build then refuses the file
// ("upgrade caddy-sso") instead of failing on the longer records (a user's
// sign-in, the sweep and backup would).
func (db *DB) migrate3to4() error {
	err := db.bdb.Update(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
	if err != nil {
		return fmt.Errorf("bolt: upgrade %s to schema %d: %w", db.path, SchemaVersion, err)
	}
	return nil
}

// reindex is the upgrade from schema 1 or 2 (to 3, whose records schema 4
// keeps), and the repair of a file that lost
// an index bucket: it converts schema 2 session records (migrateSession)
// and rebuilds every index and counter from the records, in transactions
// of migrateChunk records.
//
// Schema 3 folds case-insensitive keys with store.FoldName (Unicode NFC and
// case folding) instead of strings.ToLower, indexes sessions by expiry,
// last use, logout subject and session ID, and keeps a session's tokens
// and last-seen time apart from its record; rebuilding every index from
// the records is the one way to be sure they all agree.
//
// Where two records claim one key (only possible when folding newly
// equates two names), the first in ID order keeps it and the other goes
// unindexed; (*DB).Check reports it.
//
// The first transaction sets the schema to 3 and marks the upgrade as
// running ("upgrading" in meta); the last removes the mark. A schema 2
// build therefore refuses the file from the first transaction on (it
// cannot read the new session records), and an interrupted upgrade starts
// over from empty indexes at the next read-write open.
//
// from is the file's schema version. Of the buckets of records, the first
// transaction creates only those that version did not have (session_seen
// and session_tokens for 2): one it had and lost is damage (checkRecords),
// which a bucket recreated empty would hide.
func (db *DB) reindex(from int) error {
	wrap := func(err error) error {
		return fmt.Errorf("bolt: upgrade %s to schema %d: %w", db.path, SchemaVersion, err)
	}
	err := db.bdb.Update(func(btx *bolt.Tx) error {
		meta, err := btx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		if err := meta.Put(keyUpgrading, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		if err := checkRecords(btx, db.path, from); err != nil {
			return err
		}
		had := schemaBuckets(from)
		for _, name := range primaryBuckets() {
			if holds(had, name) {
				continue
			}
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		for _, name := range append(derivedBuckets(), bucketSessionNameIDs) {
			if btx.Bucket(name) != nil {
				if err := btx.DeleteBucket(name); err != nil {
					return fmt.Errorf("reset bucket %s: %w", name, err)
				}
			}
		}
		for _, name := range derivedBuckets() {
			if _, err := btx.CreateBucket(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return wrap(err)
	}
	steps := []struct {
		bucket []byte
		fn     func(t *tx, k, v []byte) error
	}{
		{bucketUsers, (*tx).reindexUser},
		{bucketGroups, (*tx).reindexGroup},
		{bucketSessions, (*tx).reindexSession},
		{bucketConsumed, (*tx).reindexConsumed},
		{bucketTombstones, func(t *tx, _, _ []byte) error { return t.addCount(countTombstones, "", 1) }},
		{bucketAudit, (*tx).reindexAudit},
	}
	for _, st := range steps {
		if err := db.eachChunk(st.bucket, st.fn); err != nil {
			return wrap(fmt.Errorf("%s: %w", st.bucket, err))
		}
	}
	err = db.bdb.Update(func(btx *bolt.Tx) error { return btx.Bucket(bucketMeta).Delete(keyUpgrading) })
	if err != nil {
		return wrap(err)
	}
	return nil
}

// eachChunk calls fn for every record of bucket, migrateChunk records per
// transaction. It reads each chunk before calling fn, since bbolt cursors
// do not survive writes to their bucket.
func (db *DB) eachChunk(bucket []byte, fn func(t *tx, k, v []byte) error) error {
	var after []byte
	for {
		var n int
		err := db.bdb.Update(func(btx *bolt.Tx) error {
			t := &tx{btx: btx, writable: true}
			type rec struct{ k, v []byte }
			var batch []rec
			c := t.bucket(bucket).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(batch) < migrateChunk; k, v = c.Next() {
				if v == nil {
					continue // a nested bucket; none is expected
				}
				batch = append(batch, rec{bytes.Clone(k), bytes.Clone(v)})
			}
			for _, r := range batch {
				if err := fn(t, r.k, r.v); err != nil {
					return fmt.Errorf("record %q: %w", r.k, err)
				}
			}
			n = len(batch)
			if n > 0 {
				after = batch[n-1].k
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n < migrateChunk {
			return nil
		}
	}
}

// putFirst puts key -> id into b unless another record holds key already.
func putFirst(b bucket, key []byte, id string) error {
	if len(key) == 0 || b.Get(key) != nil {
		return nil
	}
	return b.Put(key, []byte(id))
}

func (t *tx) reindexUser(k, v []byte) error {
	u := new(store.User)
	if err := json.Unmarshal(v, u); err != nil {
		return fmt.Errorf("decode user: %w", err)
	}
	id := string(k)
	for _, l := range u.Links {
		if err := putFirst(t.bucket(bucketLinks), linkKey(l), id); err != nil {
			return err
		}
	}
	if u.Email != "" {
		if err := putFirst(t.bucket(bucketEmails), emailKey(u.Email), id); err != nil {
			return err
		}
	}
	if u.UserName != "" {
		if err := putFirst(t.bucket(bucketUserNames), userNameKey(u.UserName), id); err != nil {
			return err
		}
	}
	if u.ExternalID != "" {
		if err := putFirst(t.bucket(bucketExternalIDs), pair(u.IdP, u.ExternalID), id); err != nil {
			return err
		}
	}
	if err := t.bucket(bucketIdPUsers).Put(pair(u.IdP, id), []byte{}); err != nil {
		return err
	}
	return t.addCount(countUsers, u.IdP, 1)
}

func (t *tx) reindexGroup(k, v []byte) error {
	g := new(store.Group)
	if err := json.Unmarshal(v, g); err != nil {
		return fmt.Errorf("decode group: %w", err)
	}
	id := string(k)
	if err := putFirst(t.bucket(bucketGroupNames), groupNameKey(g.IdP, g.DisplayName), id); err != nil {
		return err
	}
	if g.ExternalID != "" {
		if err := putFirst(t.bucket(bucketGroupExternalIDs), pair(g.IdP, g.ExternalID), id); err != nil {
			return err
		}
	}
	if err := t.bucket(bucketIdPGroups).Put(pair(g.IdP, id), []byte{}); err != nil {
		return err
	}
	for _, m := range g.Members {
		if err := t.bucket(bucketUserGroups).Put(pair(m, id), []byte(g.DisplayName)); err != nil {
			return err
		}
	}
	return t.addCount(countGroups, g.IdP, 1)
}

// reindexSession converts a schema 2 record (upgradeSession) and indexes it.
func (t *tx) reindexSession(k, v []byte) error {
	r, seen, err := t.upgradeSession(k, v)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	for _, m := range t.sessionIndexes(sessionKeys{}, keysOf(string(k), r, seen)) {
		if m.new != nil {
			if err := m.b.Put(m.new, []byte{}); err != nil {
				return err
			}
		}
	}
	return t.addCount(countSessions, "", 1)
}

// reindexConsumed converts a schema 2 expiry (plain unix nanoseconds, whose
// sign bit is clear for any time after 1970) to encTime, whose sign bit is
// set for those times, and indexes it. A converted value is left alone, so
// an interrupted upgrade can run again.
func (t *tx) reindexConsumed(k, v []byte) error {
	if len(v) != 8 {
		return t.bucket(bucketConsumed).Delete(k) // unreadable: treat as expired
	}
	until := binary.BigEndian.Uint64(v)
	if until&(1<<63) == 0 {
		until = encTime(time.Unix(0, int64(until)))
		if err := t.bucket(bucketConsumed).Put(k, u64(until)); err != nil {
			return err
		}
	}
	return t.bucket(bucketConsumedUntil).Put(timeKey(until, string(k)), []byte{})
}

func (t *tx) reindexAudit(k, v []byte) error {
	var e struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return fmt.Errorf("decode audit event: %w", err)
	}
	if e.UserID != "" && len(k) == 8 {
		if err := t.bucket(bucketAuditByUser).Put(append(pair(e.UserID, ""), k...), []byte{}); err != nil {
			return err
		}
	}
	return t.addCount(countAudit, "", 1)
}

// migrate1to2 upgrades a version 1 file to schema 2.
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
func (db *DB) migrate1to2() error {
	// Of version 1's buckets, those of records are there (checkRecords)
	// and its indexes are not read here: reindex rebuilds them.
	err := db.bdb.Update(func(btx *bolt.Tx) error {
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

	err = db.eachChunk(bucketUsers, func(t *tx, id, raw []byte) error { return t.migrateUser(id, raw) })
	if err != nil {
		return fmt.Errorf("bolt: migrate %s to schema 2: %w", db.path, err)
	}

	err = db.bdb.Update(func(btx *bolt.Tx) error {
		return btx.Bucket(bucketMeta).Put(keySchema, []byte("2"))
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
