// Package bolt is the embedded default store of caddy-sso, one bbolt file
// per Caddy instance.
//
// Layout (schema version 4; 4 is 3 with session records that may carry
// AuthTime), one bucket per record kind plus the indexes
// that keep every lookup on the login path, every SCIM filter and every
// housekeeping pass a B+tree seek or a walk from the oldest end of a
// time-ordered index:
//
//	meta                "schema" -> decimal schema version; "upgrading" while an upgrade runs
//	users               user ID -> JSON store.User
//	links               pair(idp, subject) -> user ID
//	emails              FoldName(email) -> user ID
//	user_names          FoldName(SCIM userName) -> user ID
//	external_ids        pair(user's IdP, externalId) -> user ID
//	idp_users           pair(user's IdP, user ID) -> empty
//	groups              group ID -> JSON store.Group
//	group_names         pair(idp, FoldName(display name)) -> group ID
//	group_external_ids  pair(idp, externalId) -> group ID
//	idp_groups          pair(idp, group ID) -> empty
//	user_groups         pair(user ID, group ID) -> group display name
//	tombstones          pair(idp, subject) -> JSON store.Tombstone
//	counts              pair(kind, idp) -> big-endian uint64 (see Counts)
//	sessions            session hash -> binary session record (sessions.go)
//	session_seen        session hash -> time(LastSeen) | time(Created)
//	session_tokens      session hash -> sealed tokens (opaque)
//	user_sessions       pair(user ID, session hash) -> empty
//	session_expiry      time(Expires) | session hash -> empty
//	session_idle        time(max(LastSeen, Created)) | session hash -> empty
//	session_subjects    pair(idp, pair(logout subject, session hash)) -> empty
//	session_sids        pair(idp, pair(logout session ID, session hash)) -> empty
//	consumed            pair(kind, id) -> time(until)
//	consumed_until      time(until) | pair(kind, id) -> empty
//	secrets             name -> raw bytes
//	audit               big-endian uint64 seq -> JSON store.Event
//	audit_by_user       pair(user ID, "") + big-endian seq -> empty
//
// pair(a, b) is uvarint(len(a)) | a | b. The length prefix makes the
// encoding unambiguous for arbitrary strings, which IdP subjects are, and it
// makes pair(a, "") an exact prefix of every key that starts with a.
// time(t) is 8 big-endian bytes that sort as the times do (keys.go), so the
// sweep of expired sessions and the pruning of single-use IDs read only
// entries that are due.
//
// idp_users and idp_groups give SCIM's unfiltered listing a stable order
// (by ID) inside one IdP, and counts gives its totalResults, and Counts,
// without a scan. user_groups is the member index (user -> groups); its
// value is the group's name so that rendering a user's groups reads no
// group record.
//
// A session is split so that each job writes only what it needs: the
// record is written at sign-in, the 16-byte session_seen value and one
// session_idle key by the last-seen flush, and the tokens (an ID token is
// over a kilobyte) only by sign-in and token refresh.
//
// Opening an older file read-write upgrades it once (migrate.go); a newer
// build's file is refused, so an older build never writes a layout it does
// not know.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// SchemaVersion is the layout version this build reads and writes.
const SchemaVersion = 4

// DefaultLockTimeout is the wait for the file lock when Options.LockTimeout is zero.
const DefaultLockTimeout = 5 * time.Second

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
	// ErrSyncFailed: a commit's fsync failed, and the store refuses every
	// write until it is opened again (DB.failClosed).
	ErrSyncFailed = errors.New("the disk failed a sync of the store")
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

	bucketSessionSeen     = []byte("session_seen")
	bucketSessionTokens   = []byte("session_tokens")
	bucketSessionExpiry   = []byte("session_expiry")
	bucketSessionIdle     = []byte("session_idle")
	bucketSessionSubjects = []byte("session_subjects")
	bucketSessionSIDs     = []byte("session_sids")
	bucketConsumedUntil   = []byte("consumed_until")

	// bucketSessionNameIDs is a schema 2 index that session_subjects replaced.
	bucketSessionNameIDs = []byte("session_name_ids")

	keySchema    = []byte("schema")
	keyUpgrading = []byte("upgrading")
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

// primaryBuckets hold records; everything else is derived from them and
// rebuilt by the schema 3 upgrade (derivedBuckets).
func primaryBuckets() [][]byte {
	return [][]byte{
		bucketUsers, bucketGroups, bucketTombstones, bucketSessions, bucketSessionSeen,
		bucketSessionTokens, bucketConsumed, bucketSecrets, bucketAudit,
	}
}

// derivedBuckets are indexes and counters, rebuilt from the primary
// buckets by reindex (migrate.go).
func derivedBuckets() [][]byte {
	return [][]byte{
		bucketLinks, bucketEmails, bucketUserNames, bucketExternalIDs, bucketIdPUsers,
		bucketGroupNames, bucketGroupExternalIDs, bucketIdPGroups, bucketUserGroups, bucketCounts,
		bucketUserSessions, bucketSessionExpiry, bucketSessionIdle, bucketSessionSubjects, bucketSessionSIDs,
		bucketConsumedUntil, bucketAuditByUser,
	}
}

// dataBuckets are every bucket of the current schema but meta.
func dataBuckets() [][]byte { return append(primaryBuckets(), derivedBuckets()...) }

// schemaBuckets are the data buckets a file of schema version v has, as
// its build and the upgrades (migrate.go) lay them out: version 1's, then
// those version 2 added; version 3 brought this layout, which 4 keeps.
func schemaBuckets(v int) [][]byte {
	switch v {
	case 1:
		return v1Buckets()
	case 2:
		return append(v1Buckets(), v2Buckets()...)
	}
	return dataBuckets()
}

// recordBuckets are the buckets of a file of schema version v that hold
// records: the primaryBuckets that version has.
func recordBuckets(v int) [][]byte {
	had := schemaBuckets(v)
	return slices.DeleteFunc(primaryBuckets(), func(name []byte) bool { return !holds(had, name) })
}

// holds reports whether names contains name.
func holds(names [][]byte, name []byte) bool {
	return slices.ContainsFunc(names, func(n []byte) bool { return bytes.Equal(n, name) })
}

// checkRecords fails with ErrDamaged when a file of schema version v lacks
// a bucket of records that version has. Every version's layout and every
// upgrade's first transaction create them, so one missing is damage that
// no rebuild from the records can repair: recreating it empty would lose
// its records silently (users gone, keys new, audit numbers reused).
func checkRecords(btx *bolt.Tx, path string, v int) error {
	for _, name := range recordBuckets(v) {
		if btx.Bucket(name) == nil {
			return fmt.Errorf("bolt: store %s is damaged: it lacks bucket %s, which holds records; %s: %w", path, name, restoreHint, ErrDamaged)
		}
	}
	return nil
}

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
	// OnWrite, when set, is told how long each write transaction held the
	// write lock and what for (WriteHold). For the slow-write log and
	// bench/storeload.
	OnWrite func(WriteHold)
	// SyncFreelist writes bbolt's list of free pages at every commit (its
	// default) instead of rebuilding the list when the file is opened;
	// see Open for why the default is the other way round. For
	// comparisons (bench/storeload) only.
	SyncFreelist bool
	// NoSync skips the fsync of each commit, for bulk loads (a restore, the
	// bench/genstore generator) that call Sync at the end. A crash during
	// such a load can lose or damage the file; never set it for a store
	// that serves.
	NoSync bool
	// NoRehearsal turns off the rehearsal of Updates in a read
	// transaction before they take the write lock (rehearse.go), to
	// measure what it saves (bench/storeload -rehearse=false).
	NoRehearsal bool
	// Logger receives the ERROR of a disk that failed a sync (failClosed);
	// nil logs nothing (the failing writes' errors still say it).
	Logger *zap.Logger
}

// DB is a store.Store on one bbolt file.
type DB struct {
	bdb      *bolt.DB
	path     string
	readOnly bool
	onWrite  func(WriteHold)
	commit   committer // see commit.go
	// noRehearsal and coldUntil (UnixNano) decide which Updates are
	// rehearsed (rehearse.go).
	noRehearsal bool
	coldUntil   atomic.Int64
	// file is the open file's identity and createdNew whether Open laid
	// it out new (file.go).
	file       os.FileInfo
	createdNew atomic.Bool
	// failed is set once a commit's sync failed: writes are refused with
	// its error until the store is opened again (failClosed).
	failed atomic.Pointer[failure]
	logger *zap.Logger
}

// failure is the error every write gets after a failed sync.
type failure struct{ err error }

var _ store.Store = (*DB)(nil)

// Open opens or creates the store at path, creating the parent directory
// (0700) and the file (0600) so that session hashes and secrets are
// readable by the Caddy user only. A store it creates is durable, name
// included, when it returns (syncNames).
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	var named []string // directories that get a new name: the file's, and those holding one created
	if !opts.ReadOnly {
		named = newNames(path)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil { //nolint:gosec // G703: the store path the operator configured
			return nil, fmt.Errorf("bolt: create directory for store %s: %w", path, err)
		}
	}
	if err := preflight(path); err != nil {
		return nil, err
	}
	bopts := &bolt.Options{
		Timeout:  timeout,
		ReadOnly: opts.ReadOnly,
		// bbolt's default writes the whole list of free pages at every
		// commit (8 bytes a page, and the hashmap list sorts it first),
		// so commits slow down as sweeps leave pages free. Keeping the
		// list in memory only (NoFreelistSync, as etcd runs bbolt) makes
		// a commit's cost independent of them; Close writes the list so
		// that the next start reads it instead of reading every page to
		// rebuild it. Measured with bench/storeload on a 1M-user,
		// 4.4 GiB store with 505,000 free pages (2 GiB), one sign-in at a
		// time: list written at each commit p50 55-76 ms, p99 195-376 ms;
		// in memory p50 3.9-6.0 ms, p99 27-56 ms; start-up (Open and the
		// first write) 150-290 ms either way. With 16,000 free pages the
		// two are within noise (p50 4-8 ms). The price: after a crash no
		// list was written, and the first write rebuilds it by reading
		// the file: 50-116 s from a cold page cache, 5-8 s warm, at
		// 4.4 GiB; reads are served meanwhile, writes wait. The hashmap
		// list keeps allocation cheap however fragmented the file is.
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: !opts.SyncFreelist,
	}
	var bdb *bolt.DB
	var err error
	if opts.ReadOnly {
		bdb, err = openFile(path, bopts)
	} else {
		bdb, err = openReserving(bopts, fileSize(path), func(o *bolt.Options) (*bolt.DB, error) { return openFile(path, o) })
	}
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, &lockedError{path: path, wait: timeout}
		}
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, bolterrors.ErrChecksum) {
			return nil, fmt.Errorf("bolt: store %s is damaged: %v; %s: %w", path, err, restoreHint, ErrDamaged)
		}
		return nil, openError(path, err)
	}
	bdb.NoSync = opts.NoSync
	db := &DB{bdb: bdb, path: path, readOnly: opts.ReadOnly, onWrite: opts.OnWrite, noRehearsal: opts.NoRehearsal, logger: opts.Logger}
	if db.logger == nil {
		db.logger = zap.NewNop()
	}
	if err := db.initChecked(); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	if db.file, err = os.Stat(path); err != nil { //nolint:gosec // G703: the store path the operator configured
		_ = bdb.Close()
		return nil, fmt.Errorf("bolt: store %s: %w", path, err)
	}
	if err := syncNames(named); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("bolt: store %s: sync the directory of its new file: %w", path, err)
	}
	return db, nil
}

// newNames returns the directories that will get a new entry when Open
// creates path (nil when the file exists): the file's own, and the parent
// of each directory MkdirAll will create. bbolt fsyncs the file it creates,
// but its name lives in the directory, and so does each new directory's:
// without syncing them, a power cut after the first answered write can
// leave no store at path, and the next start an empty one (new keys, every
// session ended).
func newNames(path string) []string {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) { //nolint:gosec // G703: the store path the operator configured
		return nil
	}
	dir := filepath.Dir(path)
	names := []string{dir}
	for {
		parent := filepath.Dir(dir)
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) || parent == dir { //nolint:gosec // G703: the store path the operator configured
			return names
		}
		names, dir = append(names, parent), parent
	}
}

// syncNames fsyncs each directory. A file system that cannot sync a
// directory (EINVAL) is left to its own guarantees.
func syncNames(dirs []string) error {
	for _, dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = d.Sync()
		_ = d.Close()
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	return nil
}

// openFile is bolt.Open for a file that passed preflight but may still be
// damaged past its meta pages. bbolt trusts the pages it reads: a garbled
// free-page list or branch page makes it panic ("invalid freelist page")
// or read outside its mapping (a fault). Both become ErrDamaged here, so
// Caddy refuses to start with the file's name and the restore hint
// instead of crashing (docs/operations.md, "Limits and behaviour under
// failure"). preflight catches the usual garbage first: after a panic
// here the file's mapping, and with it the file's lock, stay until the
// process exits.
func openFile(path string, o *bolt.Options) (bdb *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damagedBy(path, p)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return bolt.Open(path, 0o600, o)
}

// initChecked is init with the same protection: init reads the buckets.
func (db *DB) initChecked() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damagedBy(db.path, p)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return db.init()
}

// damagedBy is the error for a panic of bbolt reading a damaged file.
func damagedBy(path string, panicked any) error {
	return fmt.Errorf("bolt: store %s is damaged: %v; %s: %w", path, panicked, restoreHint, ErrDamaged)
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

// init checks the schema version, upgrades an older file and, on a fresh
// writable file, creates the buckets. It writes only when something is
// missing, so opening an up-to-date store costs no commit.
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
	switch {
	case st.version == 0:
		if db.readOnly {
			return fmt.Errorf("bolt: store %s is not initialised and was opened read-only", db.path)
		}
		return db.create()
	case st.version < SchemaVersion || st.upgrading:
		if db.readOnly {
			return fmt.Errorf("bolt: store %s has schema version %d and needs a one-time upgrade to %d; open it read-write once: %w",
				db.path, st.version, SchemaVersion, ErrOldSchema)
		}
		// A lost index of a schema 3 file makes its upgrade a rebuild,
		// as it would be at schema 4 (v1 and v2 are rebuilt anyway).
		return db.migrate(st.version, st.upgrading || st.missing != nil)
	case st.missing != nil:
		// A bucket of this schema is gone: the file was damaged or edited.
		// Rebuilding the indexes from the records is what an upgrade does.
		if db.readOnly {
			return fmt.Errorf("bolt: store %s lacks bucket %s; open it read-write once to rebuild its indexes, or restore a backup (caddy sso restore): %w",
				db.path, st.missing, ErrOldSchema)
		}
		return db.migrate(SchemaVersion, true)
	}
	return nil
}

// create lays out a fresh file.
func (db *DB) create() error {
	err := db.bdb.Update(func(btx *bolt.Tx) error {
		if _, err := checkSchema(btx, db.path); err != nil {
			return err
		}
		meta, err := btx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		for _, name := range dataBuckets() {
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: init store %s: %w", db.path, err)
	}
	db.createdNew.Store(true)
	return nil
}

// schemaState is what checkSchema found: the file's version (0 for a
// fresh file), whether an upgrade was interrupted, and the first bucket of
// the file's version that is missing (an index: checkSchema refuses a file
// that lacks a bucket of records).
type schemaState struct {
	version   int
	upgrading bool
	missing   []byte
}

// checkSchema reads the file's schema version, and fails on a newer schema,
// a foreign file or a file that lost a bucket of records.
func checkSchema(btx *bolt.Tx, path string) (schemaState, error) {
	meta := btx.Bucket(bucketMeta)
	if meta == nil {
		foreign := false
		_ = btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			foreign = true
			return nil
		})
		if foreign {
			return schemaState{}, fmt.Errorf("bolt: open %s: a bbolt database of another program, not a caddy-sso store; check the store path, or %s: %w", path, restoreHint, ErrNotStore)
		}
		return schemaState{}, nil
	}
	raw := meta.Get(keySchema)
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return schemaState{}, fmt.Errorf("bolt: open %s: schema version %q unreadable; %s: %w", path, raw, restoreHint, ErrNotStore)
	}
	if v > SchemaVersion {
		return schemaState{}, fmt.Errorf("bolt: open %s: schema version %d, this build supports up to %d; upgrade caddy-sso, or %s made by this version: %w",
			path, v, SchemaVersion, restoreHint, ErrNewerSchema)
	}
	// At every version, not only this build's: an upgrade would otherwise
	// recreate a lost bucket of records empty (reindex) or stamp the file
	// current without it (migrate3to4).
	if err := checkRecords(btx, path, v); err != nil {
		return schemaState{}, err
	}
	st := schemaState{version: v, upgrading: meta.Get(keyUpgrading) != nil}
	for _, name := range schemaBuckets(v) {
		if btx.Bucket(name) == nil {
			st.missing = name
			break
		}
	}
	return st, nil
}

// commitError names the file and, for the causes an operator can act on,
// says what to do. id is the failed transaction's.
//
// A commit writes the changed pages, fdatasyncs, writes the header (meta
// page) and fdatasyncs again. When the last sync fails, the header is
// written already: bbolt's mapping shows the change to every later read,
// though the disk did not confirm it, so its outcome is unknown
// (store.ErrOutcomeUnknown), never "nothing was written". After any failed
// sync the store fails closed (failClosed).
func (db *DB) commitError(id int, err error) error {
	visible := false
	_ = db.bdb.View(func(btx *bolt.Tx) error { visible = btx.ID() >= id; return nil })
	if visible || syncFailed(err) {
		db.failClosed(err)
	}
	switch {
	case visible:
		return fmt.Errorf("bolt: commit to %s: the disk failed to confirm it (%v), but the change is in the file for later reads; writes are refused until Caddy restarts: %w: %w",
			db.path, err, store.ErrOutcomeUnknown, err)
	case syncFailed(err):
		return fmt.Errorf("bolt: commit to %s: the disk failed a sync (%v); nothing of this change was written, and writes are refused until Caddy restarts: %w", db.path, err, err)
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("bolt: commit to %s: the disk is full; nothing of this change was written, and writes fail until space is freed: %w", db.path, err)
	}
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO) {
		return fmt.Errorf("bolt: commit to %s: the file can no longer be written (%v); nothing of this change was written: %w", db.path, err, err)
	}
	return fmt.Errorf("bolt: commit to %s: %w", db.path, err)
}

// syncFailed reports an error of an fsync or fdatasync: bbolt returns
// Linux's fdatasync error bare, os.File.Sync's as a PathError "sync", and
// the sync of a file it grew as text only.
func syncFailed(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op == "sync"
	}
	var errno syscall.Errno
	return errors.As(err, &errno) || strings.HasPrefix(err.Error(), "file sync error")
}

// failClosed makes every later write fail, and logs an ERROR the first
// time. After a failed fsync Linux may have dropped the dirty pages it could
// not write, and the page cache then holds what the disk does not:
// PostgreSQL panics on such a failure for that reason (docs/operations.md,
// "Limits and behaviour under failure"). Reads go on (cached sessions keep
// working); writes get the store-unavailable answers of a full disk (503
// pages, SCIM 5xx). Only opening the file again reads what is on disk: a
// config reload keeps the store open, so a restart.
func (db *DB) failClosed(cause error) {
	const fix = "check the disk and the kernel log (dmesg), free or replace it, then restart Caddy (a reload keeps the store open); run `caddy sso check --store` on the stopped store"
	f := &failure{err: fmt.Errorf("bolt: store %s: writes refused since the disk failed a sync (%v); %s: %w", db.path, cause, fix, ErrSyncFailed)}
	if db.failed.CompareAndSwap(nil, f) {
		db.logger.Error("the disk failed a sync of the store: its writes are refused until Caddy restarts",
			zap.String("store", db.path), zap.Error(cause), zap.String("fix", fix))
	}
}

// refused returns the error of a store that failed closed, or nil.
func (db *DB) refused() error {
	if f := db.failed.Load(); f != nil {
		return f.err
	}
	return nil
}

// Sync flushes the file to disk: the end of a bulk load with Options.NoSync.
func (db *DB) Sync() error {
	if err := db.bdb.Sync(); err != nil {
		return fmt.Errorf("bolt: sync %s: %w", db.path, err)
	}
	return nil
}

// Path returns the file the store lives in.
func (db *DB) Path() string { return db.path }

// Close writes the free-page list (see Open), then releases
// the file and its lock. Updates must have ended.
func (db *DB) Close() error {
	var err error
	// A store that failed closed writes nothing more: the next start
	// rebuilds the list.
	if !db.readOnly && db.bdb.NoFreelistSync && db.refused() == nil {
		// Inside a write transaction, so no other commit reads the flag
		// while it changes; this commit then writes the list.
		err = db.bdb.Update(func(*bolt.Tx) error {
			db.bdb.NoFreelistSync = false
			return nil
		})
		if err != nil {
			err = fmt.Errorf("bolt: close %s: write the free-page list (the next start rebuilds it): %w", db.path, err)
		}
	}
	if cerr := db.bdb.Close(); cerr != nil {
		return fmt.Errorf("bolt: close %s: %w", db.path, cerr)
	}
	return err
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

// Backup writes a compact copy of the store to w and returns its size:
// only live data, in full pages (bbolt's Compact), read in one transaction
// so that it is consistent while the store keeps serving. The copy opens
// with Open like the original. It is built in a temporary file beside the
// store (so that directory needs free space for about the live data), then
// streamed to w; BackupTo writes it straight to a file.
//
// The read transaction lasts the whole copy. Meanwhile a commit that must
// grow the file's mapping waits for it; bbolt grows the mapping in large
// steps, so this is rare.
func (db *DB) Backup(w io.Writer) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(db.path), filepath.Base(db.path)+".backup-*")
	if err != nil {
		return 0, fmt.Errorf("bolt: backup %s: temporary file: %w", db.path, err)
	}
	name := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(name)
	if _, err := db.compactTo(name); err != nil {
		return 0, err
	}
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("bolt: backup %s: %w", db.path, err)
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return n, fmt.Errorf("bolt: backup %s: write: %w", db.path, err)
	}
	return n, nil
}

// BackupTo writes a compact copy of the store (see Backup) to a new file
// at path, which must not exist, and returns its size.
func (db *DB) BackupTo(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("bolt: backup %s: %w", db.path, err)
	}
	_ = f.Close()
	n, err := db.compactTo(path)
	if err != nil {
		_ = os.Remove(path)
	}
	return n, err
}

// compactTo copies the live data into the (empty) file at path.
func (db *DB) compactTo(path string) (int64, error) {
	wrap := func(err error) error { return fmt.Errorf("bolt: backup %s to %s: %w", db.path, path, err) }
	// Mapped as large as the copy will be, so that it is not mapped again
	// and again as it grows.
	dst, err := openReserving(&bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType}, fileSize(db.path),
		func(o *bolt.Options) (*bolt.DB, error) { return bolt.Open(path, 0o600, o) })
	if err != nil {
		return 0, wrap(err)
	}
	// Commit every 64 MiB, so memory stays bounded on a large store.
	if err := bolt.Compact(dst, db.bdb, 64<<20); err != nil {
		_ = dst.Close()
		return 0, wrap(err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return 0, wrap(err)
	}
	if err := dst.Close(); err != nil {
		return 0, wrap(err)
	}
	// bbolt grows a file ahead of its data (16 MiB at a time); a backup
	// need not carry that slack.
	size, err := dataSize(path)
	if err != nil {
		return 0, wrap(err)
	}
	if err := os.Truncate(path, size); err != nil {
		return 0, wrap(err)
	}
	return size, nil
}
