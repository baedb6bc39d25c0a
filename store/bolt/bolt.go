// Package bolt is the embedded default store of caddy-sso, one bbolt file
// per Caddy instance.
//
// Layout (schema version 2), one bucket per record kind plus the indexes
// that keep every lookup on the login path, and every SCIM filter, a single
// B+tree seek:
//
//	meta                "schema" -> decimal schema version
//	users               user ID -> JSON store.User
//	links               pair(idp, subject) -> user ID
//	emails              lower-cased email -> user ID
//	user_names          lower-cased SCIM userName -> user ID            (v2)
//	external_ids        pair(user's IdP, externalId) -> user ID         (v2)
//	idp_users           pair(user's IdP, user ID) -> empty              (v2)
//	groups              group ID -> JSON store.Group                    (v2)
//	group_names         pair(idp, lower-cased display name) -> group ID (v2)
//	group_external_ids  pair(idp, externalId) -> group ID               (v2)
//	idp_groups          pair(idp, group ID) -> empty                    (v2)
//	user_groups         pair(user ID, group ID) -> group display name   (v2)
//	tombstones          pair(idp, subject) -> JSON store.Tombstone      (v2)
//	counts              pair("u" or "g", idp) -> big-endian uint64      (v2)
//	sessions            session hash -> JSON store.Session
//	user_sessions       pair(user ID, session hash) -> empty
//	consumed            pair(kind, id) -> big-endian unix-nano expiry
//	secrets             name -> raw bytes
//	audit               big-endian uint64 seq -> JSON store.Event
//	audit_by_user       pair(user ID, "") + big-endian seq -> empty
//	session_name_ids    pair(idp, pair(SAML NameID, session hash)) -> empty (added, see below)
//
// pair(a, b) is uvarint(len(a)) | a | b. The length prefix makes the
// encoding unambiguous for arbitrary strings, which IdP subjects are, and it
// makes pair(a, "") an exact prefix of every key that starts with a.
//
// idp_users and idp_groups give SCIM's unfiltered listing a stable order
// (by ID) inside one IdP, and counts gives its totalResults without a
// scan. user_groups is the member index (user -> groups); its value is the
// group's name so that rendering a user's groups reads no group record.
//
// Version 2 is a superset of version 1. It is a new version nonetheless
// because a version 1 build writing to a version 2 file would drop the
// SCIM fields from user records and leave the new indexes pointing at
// them; it refuses the file instead. Opening a version 1 file read-write
// migrates it once (see migrate.go).
//
// Some indexes were added to version 2 later without a version change
// (addedBuckets): an older build that writes to the file leaves them
// incomplete, never wrong, because readers check every entry against the
// record it points to and a missing entry only makes a lookup miss. The
// first read-write open creates them and fills them from the records.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/caddy-sso/caddy-sso/store"
)

// SchemaVersion is the layout version this build reads and writes.
const SchemaVersion = 2

// Defaults for zero Options fields.
const (
	DefaultLockTimeout   = 5 * time.Second
	DefaultMaxBatchDelay = 2 * time.Millisecond
)

// Errors Open returns, to be tested with errors.Is.
var (
	// ErrLocked: another process (or another Open in this one) holds the file.
	ErrLocked = errors.New("store is locked by another process")
	// ErrNewerSchema: the file was written by a newer caddy-sso. Opening it
	// anyway could corrupt data the newer version relies on.
	ErrNewerSchema = errors.New("store schema is newer than this build supports")
	// ErrNotStore: the file is a bbolt database that caddy-sso did not create.
	ErrNotStore = errors.New("file is not a caddy-sso store")
	// ErrOldSchema: the file needs a one-time migration, which a read-only
	// open cannot do.
	ErrOldSchema = errors.New("store schema is older than this build and needs a read-write open to upgrade")
)

var (
	bucketMeta         = []byte("meta")
	bucketUsers        = []byte("users")
	bucketLinks        = []byte("links")
	bucketEmails       = []byte("emails")
	bucketSessions     = []byte("sessions")
	bucketUserSessions = []byte("user_sessions")
	bucketConsumed     = []byte("consumed")
	bucketSecrets      = []byte("secrets")
	bucketAudit        = []byte("audit")
	bucketAuditByUser  = []byte("audit_by_user")

	bucketUserNames        = []byte("user_names")
	bucketExternalIDs      = []byte("external_ids")
	bucketIdPUsers         = []byte("idp_users")
	bucketGroups           = []byte("groups")
	bucketGroupNames       = []byte("group_names")
	bucketGroupExternalIDs = []byte("group_external_ids")
	bucketIdPGroups        = []byte("idp_groups")
	bucketUserGroups       = []byte("user_groups")
	bucketTombstones       = []byte("tombstones")
	bucketCounts           = []byte("counts")

	bucketSessionNameIDs = []byte("session_name_ids")

	keySchema = []byte("schema")
)

// v1Buckets are the data buckets of schema version 1.
func v1Buckets() [][]byte {
	return [][]byte{
		bucketUsers, bucketLinks, bucketEmails, bucketSessions, bucketUserSessions,
		bucketConsumed, bucketSecrets, bucketAudit, bucketAuditByUser,
	}
}

// v2Buckets are the buckets schema version 2 added. A version 1 file
// never holds data in them except what an interrupted migration left.
func v2Buckets() [][]byte {
	return [][]byte{
		bucketUserNames, bucketExternalIDs, bucketIdPUsers, bucketGroups, bucketGroupNames,
		bucketGroupExternalIDs, bucketIdPGroups, bucketUserGroups, bucketTombstones, bucketCounts,
	}
}

// dataBuckets are created on first open; meta is handled separately.
func dataBuckets() [][]byte { return append(v1Buckets(), v2Buckets()...) }

// addedBuckets are indexes added to version 2 after its release (see the
// package doc). A read-only open works without them; lookups then find
// nothing.
func addedBuckets() [][]byte { return [][]byte{bucketSessionNameIDs} }

// Options tune Open. The zero value is what production uses.
type Options struct {
	// LockTimeout bounds the wait for the file lock; 0 means
	// DefaultLockTimeout. A second Caddy process on the same file must fail
	// clearly rather than hang.
	LockTimeout time.Duration
	// ReadOnly opens the file with a shared lock, for admin tools that
	// inspect a store while nothing writes to it. Update then fails with
	// store.ErrReadOnly.
	ReadOnly bool
	// MaxBatchDelay is how long a concurrent Update waits for others to
	// share its commit; 0 means DefaultMaxBatchDelay. Longer delays mean
	// fewer fsyncs under a login storm and more latency per login.
	MaxBatchDelay time.Duration
}

// DB is a store.Store on one bbolt file.
type DB struct {
	bdb      *bolt.DB
	path     string
	readOnly bool
	// inflight counts Update calls in progress. A lone Update commits at
	// once; only when others are in flight does it join a bbolt batch,
	// which would otherwise add MaxBatchDelay to every write.
	inflight atomic.Int64
}

var _ store.Store = (*DB)(nil)

// Open opens or creates the store at path, creating the parent directory
// (0700) and the file (0600) so that session hashes and secrets are
// readable by the Caddy user only.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("bolt: create directory for store %s: %w", path, err)
		}
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  timeout,
		ReadOnly: opts.ReadOnly,
		// The hashmap freelist stays fast on large, fragmented files,
		// which a store with a million users and churning sessions is.
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, &lockedError{path: path, wait: timeout}
		}
		return nil, fmt.Errorf("bolt: open store %s: %w", path, err)
	}
	delay := opts.MaxBatchDelay
	if delay <= 0 {
		delay = DefaultMaxBatchDelay
	}
	bdb.MaxBatchDelay = delay

	db := &DB{bdb: bdb, path: path, readOnly: opts.ReadOnly}
	if err := db.init(); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return db, nil
}

// lockedError names the path and the wait so that an operator sees at once
// which file is contended; it matches ErrLocked.
type lockedError struct {
	path string
	wait time.Duration
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("store %s is locked by another process (gave up after %s)", e.path, e.wait)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// init checks the schema version, migrates a version 1 file and, on a
// fresh writable file, creates the buckets. It writes only when something
// is missing, so opening an up-to-date store costs no commit.
func (db *DB) init() error {
	var st schemaState
	err := db.bdb.View(func(btx *bolt.Tx) error {
		var err error
		st, err = checkSchema(btx, db.path)
		return err
	})
	if err != nil {
		return err
	}
	if st.version != 0 && st.version < SchemaVersion {
		if db.readOnly {
			return fmt.Errorf("bolt: store %s has schema version %d and needs a one-time upgrade to %d; open it read-write once: %w",
				db.path, st.version, SchemaVersion, ErrOldSchema)
		}
		if err := db.migrate(st.version); err != nil {
			return err
		}
		return db.addBuckets()
	}
	if !st.missingBuckets {
		if st.missingAdded && !db.readOnly {
			return db.addBuckets()
		}
		return nil
	}
	if db.readOnly {
		return fmt.Errorf("bolt: store %s is not initialised and was opened read-only", db.path)
	}
	err = db.bdb.Update(func(btx *bolt.Tx) error {
		if _, err := checkSchema(btx, db.path); err != nil {
			return err
		}
		meta, err := btx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("bolt: init store %s: %w", db.path, err)
		}
		if meta.Get(keySchema) == nil {
			if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return fmt.Errorf("bolt: init store %s: %w", db.path, err)
			}
		}
		for _, name := range dataBuckets() {
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bolt: init store %s: bucket %s: %w", db.path, name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.addBuckets()
}

// addBuckets creates the added indexes that are missing and fills each
// from the records it indexes.
func (db *DB) addBuckets() error {
	err := db.bdb.Update(func(btx *bolt.Tx) error {
		if btx.Bucket(bucketSessionNameIDs) != nil {
			return nil
		}
		idx, err := btx.CreateBucket(bucketSessionNameIDs)
		if err != nil {
			return err
		}
		return btx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			key, err := sessionNameIDKeyOf(string(k), v)
			if err != nil || key == nil {
				return err
			}
			return idx.Put(key, []byte{})
		})
	})
	if err != nil {
		return fmt.Errorf("bolt: init store %s: index %s: %w", db.path, bucketSessionNameIDs, err)
	}
	return nil
}

// schemaState is what checkSchema found: the file's version (0 for a
// fresh file) and whether any bucket of this version is missing.
type schemaState struct {
	version        int
	missingBuckets bool
	missingAdded   bool // some of addedBuckets
}

// checkSchema reads the file's schema version, and fails on a newer schema
// or a foreign file.
func checkSchema(btx *bolt.Tx, path string) (schemaState, error) {
	meta := btx.Bucket(bucketMeta)
	if meta == nil {
		foreign := false
		_ = btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			foreign = true
			return nil
		})
		if foreign {
			return schemaState{}, fmt.Errorf("bolt: open %s: %w", path, ErrNotStore)
		}
		return schemaState{missingBuckets: true}, nil
	}
	raw := meta.Get(keySchema)
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return schemaState{}, fmt.Errorf("bolt: open %s: schema version %q unreadable: %w", path, raw, ErrNotStore)
	}
	if v > SchemaVersion {
		return schemaState{}, fmt.Errorf("bolt: open %s: schema version %d, this build supports up to %d; upgrade caddy-sso: %w",
			path, v, SchemaVersion, ErrNewerSchema)
	}
	st := schemaState{version: v}
	for _, name := range dataBuckets() {
		if btx.Bucket(name) == nil {
			st.missingBuckets = true
			break
		}
	}
	for _, name := range addedBuckets() {
		if btx.Bucket(name) == nil {
			st.missingAdded = true
		}
	}
	return st, nil
}

// Path returns the file the store lives in.
func (db *DB) Path() string { return db.path }

// Close releases the file and its lock.
func (db *DB) Close() error {
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("bolt: close %s: %w", db.path, err)
	}
	return nil
}

// View runs fn in a read-only transaction; writes inside it return
// store.ErrReadOnly. Errors from fn are returned as they are, so callers
// can match their own error types.
func (db *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bdb.View(func(btx *bolt.Tx) error {
		return fn(&tx{btx: btx})
	})
}

// Update runs fn in a read-write transaction and commits when fn returns
// nil. When other Updates are in flight it joins a bbolt batch, so a burst
// of logins shares a few fsyncs instead of paying one each; fn may then run
// more than once (see the store package doc). An error from fn rolls back
// everything fn did and is returned as it is.
func (db *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.readOnly {
		return fmt.Errorf("bolt: update %s: opened read-only: %w", db.path, store.ErrReadOnly)
	}
	// fnErr is the result of the last run of fn; anything else that
	// Update returns came from bbolt itself and gets context.
	var fnErr error
	run := func(btx *bolt.Tx) error {
		fnErr = fn(&tx{btx: btx, writable: true})
		return fnErr
	}
	var err error
	if db.inflight.Add(1) == 1 {
		err = db.bdb.Update(run)
	} else {
		err = db.bdb.Batch(run)
	}
	db.inflight.Add(-1)
	if err != nil && err != fnErr {
		return fmt.Errorf("bolt: commit to %s: %w", db.path, err)
	}
	return err
}

// Backup writes a consistent copy of the whole file to w while the store
// keeps serving; the copy opens with Open like the original.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bdb.View(func(btx *bolt.Tx) error {
		var err error
		n, err = btx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("bolt: backup %s: %w", db.path, err)
	}
	return n, nil
}
