// Package postgres is the store backend that several Caddy instances share:
// store.Store and store.Broadcaster on one PostgreSQL database, through a
// pgx connection pool. See docs/cluster.md for running it.
//
// # Transactions: read committed, row locks, key locks, reruns
//
// Update runs fn in a READ COMMITTED transaction and makes what the store
// contract promises hold with several instances writing at once by
// locking what fn reads in order to write:
//
//   - row locks: in an Update, every read of a user, group or session by
//     ID or key is SELECT … FOR NO KEY UPDATE (an insert of a row that
//     points to it by a foreign key does not wait), so another transaction that reads
//     the same record to change it waits for this one's commit and then
//     reads the new version; neither overwrites the other's change;
//   - key locks: a read by a unique key (IdP link, folded email, folded
//     userName, externalId per IdP, group name or externalId per IdP),
//     and PutUser and PutGroup for every key they will take (PutUser but
//     those the user's row, which this transaction holds, has already),
//     first take a transaction-scoped advisory lock on a hash of that
//     key's value. A read that finds nothing thus still stops a
//     concurrent transaction from taking the value until this one ends,
//     and then sees it: of two instances signing in one new user at
//     once, the second waits for the first's commit, finds the user by
//     its link, and creates none
//     (the predicate lock serializable isolation would take, but exact:
//     one per value, not per index page);
//   - unique indexes back every key, so that PutUser and PutGroup, which
//     check every key before writing anything and return ErrEmailTaken
//     and the like having written nothing, cannot be outrun either;
//   - reruns: a deadlock (40P01), a serialization failure (40001), and a
//     unique or foreign-key violation (23505, 23503: a concurrent commit
//     this transaction could not have locked out, such as a user deleted
//     under a new session), and a group member deleted after this
//     transaction found them (errMemberDeletedMeanwhile) roll back and
//     run fn again, a few times with a growing random pause, as the
//     contract allows (package store); so does a connection lost before
//     COMMIT (a backend ended by a DBA, a pooler or
//     idle_in_transaction_session_timeout), which the server rolled back;
//     one lost during COMMIT is never rerun
//     (store.ErrOutcomeUnknown, see commitUnknown). A View reruns only
//     after a lost connection (see View);
//   - Consume is an INSERT … ON CONFLICT on the primary key (kind, id):
//     of two instances consuming one assertion ID or state, one inserts
//     and the other waits for its commit and then finds the row, so one
//     accepts and the other refuses;
//   - LoadOrStoreSecret and Secret insert only when the name is absent;
//     a concurrent insert makes the second wait and then read the
//     first's value, so the first writer wins in the whole cluster (key
//     rotation happens once).
//
// Serializable isolation was the first choice, as it needs no reasoning
// about callers, but PostgreSQL's predicate locks cover whole index
// pages: concurrent first sign-ins of different users read and insert on
// the same pages and failed to serialize again and again (twelve reruns
// exhausted at eight concurrent sign-ins on a fresh database). Views run
// REPEATABLE READ READ ONLY: one consistent snapshot, no locks.
//
// # Audit sequence numbers
//
// Audit events are numbered from a sequence in commit order: Audit only
// queues an event, and just before COMMIT the transaction takes an
// advisory lock, draws the numbers and inserts the events; the lock is
// released when the commit is visible. A reader paging with
// AuditQuery.After (caddy sso audit --follow) thus never sees seq n+1
// while n is still to come. The price is that auditing commits do not
// overlap; the JIT benchmark shows what that costs. A transaction that
// fails after drawing its numbers leaves a gap; numbers are never reused.
//
// # Secrets
//
// The DSN holds a password. It is never logged, and every error that could
// quote it (pgx's parse and connect errors) is scrubbed of it first.
package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// Defaults for zero Config fields: the one place they live (the Caddyfile
// and the CLI fall back to these).
const (
	// DefaultMaxConns is the pool size per instance. Every instance holds
	// up to this many connections (plus one for Listen), so size
	// max_connections for instances × (DefaultMaxConns + 1).
	DefaultMaxConns = 10
	// DefaultStatementTimeout bounds every statement (PostgreSQL's
	// statement_timeout, and the client's wait for an answer a second
	// later, see DB.bound): a sign-in never waits longer than this on a
	// lock, a sick server or one that does not answer at all before it
	// fails with a clear error.
	DefaultStatementTimeout = 5 * time.Second
)

// answerGrace is how much longer than the statement timeout the client
// waits for an answer (see DB.bound): enough for the server's own
// cancellation, which says why, to arrive first.
const answerGrace = time.Second

// errJoinedMeanwhile: the user UserForDelete reads joined groups, in
// transactions that committed while it waited for the user's lock, on
// each of maxAttempts tries to take the locks in order again. Update
// reruns the transaction (retryable).
var errJoinedMeanwhile = errors.New("the user joined groups while the deletion waited for them, on every try")

// errMemberDeletedMeanwhile: PutGroup found a member gone that UsersOfIdP
// had found a user in the same transaction, which locks no row: a
// concurrent deletion committed in between. Update reruns the transaction
// (retryable), whose UsersOfIdP then finds the user gone, so the caller
// leaves them out (store.Tx.PutGroup).
var errMemberDeletedMeanwhile = errors.New("deleted since this transaction found the user (UsersOfIdP)")

// maxAttempts bounds the runs of one Update's fn under conflicts;
// retryPause is the base of the random pause between runs.
const (
	maxAttempts = 12
	retryPause  = 2 * time.Millisecond
)

// Config says how to reach the database.
type Config struct {
	// DSN is a PostgreSQL connection string, URL
	// (postgres://user:password@host:5432/db?sslmode=verify-full) or
	// key=value form. It is a secret: never logged, scrubbed from errors.
	DSN string
	// MaxConns is the pool size; 0 means DefaultMaxConns.
	MaxConns int32
	// StatementTimeout is PostgreSQL's statement_timeout for every
	// connection (SET once connected, not a start-up parameter), and
	// (plus a second) how long the client waits for any answer:
	// connecting, or one statement (see DB.bound). 0 means
	// DefaultStatementTimeout, negative means no bound at all.
	StatementTimeout time.Duration
	// Logger receives Listen's reconnections; nil logs nothing.
	Logger *zap.Logger
	// AllowReadOnly lets Open succeed on a database that takes no writes
	// (a hot standby, default_transaction_read_only on), for a caller
	// that only reads (an inspection command); its Updates then fail with
	// ErrReadOnlyDatabase. Without it Open refuses such a database.
	AllowReadOnly bool
}

// WithDefaults returns c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// DB is a store.Store and store.Broadcaster on one PostgreSQL database.
type DB struct {
	pool   *pgxpool.Pool
	conn   *pgx.ConnConfig // for Listen's dedicated connection
	logger *zap.Logger
	// secrets are the strings no error may carry: the DSN and its password.
	secrets []string
	// auditLock is the advisory lock key that orders audit commits.
	auditLock int64
	// lockSpace sets this deployment's key locks apart from another's in
	// another schema of the same database (see keyLock).
	lockSpace string
	// origin tells this handle's notifications from other instances'.
	origin string
	// answerWithin bounds the wait for the server on the client's side
	// (see bound); 0: no bound.
	answerWithin time.Duration
	reruns       atomic.Uint64
	// queueUsage is the listener's last reading of the NOTIFY queue's
	// usage (see NotifyQueueUsage); nil before its first.
	queueUsage atomic.Pointer[float64]
	// refusal lets callers wait for a pooled connection when the server
	// refuses a new one (see waitRefused).
	refusal refusal
}

var (
	_ store.Store       = (*DB)(nil)
	_ store.Broadcaster = (*DB)(nil)
)

// Open connects to the database, brings its schema up to date (creating
// it on an empty database) and returns the store. It fails with
// ErrNewerSchema when another instance has already migrated the database
// past what this build knows, and with ErrReadOnlyDatabase on a database
// that takes no writes (unless cfg.AllowReadOnly).
func Open(ctx context.Context, cfg Config) (*DB, error) {
	cfg = cfg.WithDefaults()
	secrets := secretsOf(cfg.DSN)
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil || !userInfoSound(cfg.DSN) {
		// A URL whose password was read in part as host, port or database
		// parses, but cannot reach the database meant, and pgx's connect
		// error would quote the misread parts: it is refused as what it
		// is, a password that needs percent-encoding.
		return nil, fmt.Errorf("postgres: %w", parseError(cfg.DSN))
	}
	pc.MaxConns = cfg.MaxConns
	params := pc.ConnConfig.RuntimeParams
	if params["application_name"] == "" {
		params["application_name"] = "caddy-sso"
	}
	var answerWithin time.Duration
	if cfg.StatementTimeout > 0 {
		answerWithin = cfg.StatementTimeout + answerGrace
		if pc.ConnConfig.ConnectTimeout == 0 { // connect_timeout in the DSN wins
			pc.ConnConfig.ConnectTimeout = answerWithin
		}
		// Set once connected, not sent as a start-up parameter: PgBouncer
		// (session mode, docs/cluster.md) refuses start-up parameters it
		// does not know, and with ignore_startup_parameters it drops them,
		// and the server's timeout with them. Set in pgconn's AfterConnect,
		// so that Listen's connection, a copy of this configuration, gets
		// it too.
		delete(params, "statement_timeout") // the configured one wins, as it did
	}
	overridden := new(atomic.Bool)
	pc.ConnConfig.AfterConnect = afterConnect(cfg.StatementTimeout, answerWithin, func() {
		if overridden.CompareAndSwap(false, true) {
			cfg.Logger.Warn("the database has synchronous_commit off: the store sets it on for its own connections, so that a sign-in or SCIM write it answered survives a crash of the database server",
				zap.String("database", Describe(cfg.DSN)))
		}
	})
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", scrub(err, secrets))
	}
	db := &DB{
		pool:         pool,
		conn:         pc.ConnConfig.Copy(),
		logger:       cfg.Logger,
		secrets:      secrets,
		origin:       randomHex(8),
		answerWithin: answerWithin,
	}
	if err := db.migrate(ctx, cfg.AllowReadOnly); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// afterConnect returns the AfterConnect of a new connection: it sets
// statement_timeout (timeout > 0), and synchronous_commit on where the
// server, database or role has it off, calling overridden then. With it
// off a commit returns before its WAL is on disk, and a crash of the
// database server loses writes the store answered as done (a sign-in's
// session, a SCIM deactivation). Stronger settings (remote_write,
// remote_apply) and local are left as they are. It waits for the server
// at most answerWithin when that is set (the connect timeout does not
// cover AfterConnect).
func afterConnect(timeout, answerWithin time.Duration, overridden func()) pgconn.AfterConnectFunc {
	query := "SELECT current_setting('synchronous_commit')"
	if timeout > 0 {
		query = "SET statement_timeout = " + strconv.FormatInt(timeout.Milliseconds(), 10) + "; " + query
	}
	return func(ctx context.Context, c *pgconn.PgConn) error {
		if answerWithin > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, answerWithin)
			defer cancel()
		}
		results, err := c.Exec(ctx, query).ReadAll()
		if err != nil {
			return fmt.Errorf("set statement_timeout, read synchronous_commit: %w", err)
		}
		if last := results[len(results)-1]; len(last.Rows) == 1 && string(last.Rows[0][0]) == "off" {
			if _, err := c.Exec(ctx, "SET synchronous_commit = on").ReadAll(); err != nil {
				return fmt.Errorf("set synchronous_commit: %w", err)
			}
			overridden()
		}
		return nil
	}
}

// Close closes the pool; Listen loops end with their own contexts.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// bound returns ctx limited to the time the client waits for one answer
// from the server. statement_timeout is the server's own: it cannot fire
// when the server does not run at all (a hung host) or its answers do not
// arrive (a partitioned network), and without this bound a request would
// wait for the kernel to give up on the connection, many minutes later.
// With it, the statement fails a moment after the server would have
// cancelled it, and pgx closes the connection, which the pool replaces.
func (db *DB) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if db.answerWithin <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, db.answerWithin)
}

// boundWaits is bound for a statement whose rows the client works on as
// they arrive (tx.rows): its clock counts only the time the client waits
// for the server (sending the statement, and reading each row and the
// end), and stands still between pause and resume, while the client
// decodes or re-encodes a row. Thousands of rows thus cannot make a
// server that answers look like one that does not. The context ends with
// context.DeadlineExceeded when the waits add up to answerWithin (so that
// unanswered says so), or with ctx; release frees it. The clock starts
// running.
func (db *DB) boundWaits(ctx context.Context) (bctx context.Context, pause, resume, release func()) {
	if db.answerWithin <= 0 {
		return ctx, func() {}, func() {}, func() {}
	}
	c := &waitCtx{Context: ctx, done: make(chan struct{}), left: db.answerWithin}
	stopParent := context.AfterFunc(ctx, func() { c.end(ctx.Err()) })
	c.resume()
	return c, c.pause, c.resume, func() {
		stopParent()
		c.pause()
		c.end(context.Canceled)
	}
}

// waitCtx is boundWaits' context: a deadline whose clock can stop.
type waitCtx struct {
	context.Context // the parent, for Value and Deadline
	done            chan struct{}
	mu              sync.Mutex
	err             error
	left            time.Duration // of the budget, as of since
	since           time.Time
	timer           *time.Timer // nil while the clock stands still
}

func (c *waitCtx) Done() <-chan struct{} { return c.done }

func (c *waitCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *waitCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

func (c *waitCtx) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
		c.left -= time.Since(c.since)
	}
}

func (c *waitCtx) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer == nil && c.err == nil {
		c.since = time.Now()
		c.timer = time.AfterFunc(max(c.left, 0), func() { c.end(context.DeadlineExceeded) })
	}
}

// Reruns returns how many times Update has rerun a transaction after a
// conflict (see retryable) since Open: a measure of write contention between
// instances (for metrics and benchmarks). Reruns after a lost connection,
// Update's or View's, are not counted: they say nothing of contention.
func (db *DB) Reruns() uint64 { return db.reruns.Load() }

// NotifyQueueUsage returns the server's NOTIFY queue usage (0 to 1) as
// this handle's invalidation listener last read it (every listenPing while
// it listens), and false before its first reading or while the role may
// not read it. Above 0 a listening session somewhere on the cluster does
// not read its notices; at 1 every transaction that sends one fails.
func (db *DB) NotifyQueueUsage() (float64, bool) {
	if u := db.queueUsage.Load(); u != nil {
		return *u, true
	}
	return 0, false
}

// View runs fn in a read-only transaction over one consistent snapshot.
// Writes inside it return store.ErrReadOnly; errors from fn are returned
// as they are.
//
// When the connection is lost under fn (see connLost: a backend ended by a
// DBA or a pooler, a restart or failover while it ran, a proxy's reset), fn
// runs again on another connection, up to maxAttempts runs in all as in
// Update: a read changed nothing, and otherwise a session lookup that met
// the loss failed its request with 503 while the database was up. Like
// Update's, fn must therefore act only through the Tx and start afresh on
// each run. Nothing else reruns a View: it takes no locks, so a statement
// error the server sent (even a hot standby's recovery conflict, 40001) is
// an answer, and a context that ended is the caller's.
func (db *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	return db.runs(ctx, false, fn)
}

// Update runs fn in a read-write transaction and commits when fn returns
// nil; on a conflict with a concurrent transaction, or when the connection
// is lost before COMMIT, it runs fn again (see the package doc). An error
// from fn rolls back everything and is returned as it is.
func (db *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	return db.runs(ctx, true, fn)
}

// runs is View (writable false) and Update: run, and again while an
// attempt fails in a way a rerun may pass (see run), at most maxAttempts
// times in all.
func (db *DB) runs(ctx context.Context, writable bool, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op, lostWhen, written := "view", "", ""
	if writable {
		op, lostWhen, written = "update", " before COMMIT", " (nothing was written)"
	}
	quiet := false
	for attempt := 1; ; attempt++ {
		err, retry := db.run(ctx, writable, quiet, fn)
		if retry && !quiet && notifyQueueFull(err) && ctx.Err() == nil {
			// The server refused, at COMMIT, the notices fn queued
			// (BroadcastAtCommit): a listener that does not read (a frozen
			// instance, anywhere on the cluster) holds the NOTIFY queue
			// full. Word that cannot go out must not cost the change: run
			// fn once more without notices in the transaction, so that the
			// caller broadcasts after the commit (which fails, and says so,
			// while the queue stays full). Not a conflict: not counted.
			db.logger.Warn("the database's NOTIFY queue is full: committing without telling the other instances at the commit",
				zap.String("channel", Channel), zap.Error(db.scrub(err)))
			quiet = true
			err, retry = db.run(ctx, writable, quiet, fn)
		}
		if !retry {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr // the caller's end: no rerun
		}
		lost := !writable || !retryable(err) // the connection, not a conflict (see run)
		if !lost {
			db.reruns.Add(1)
		}
		if attempt == maxAttempts && lost {
			return fmt.Errorf("postgres: %s: the connection to the database was lost%s in each of %d attempts%s: %w",
				op, lostWhen, attempt, written, db.scrub(err))
		}
		if attempt == maxAttempts {
			return fmt.Errorf("postgres: update: still conflicting with concurrent transactions after %d attempts: %w", attempt, err)
		}
		// Random pauses that grow with the attempt spread the reruns of
		// transactions that conflicted with each other.
		pause := time.Duration(mrand.Int64N(int64(retryPause) << min(attempt, 6))) //nolint:gosec // G404: jitter, not a secret
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// begin begins a transaction on a pooled connection. After a restart or a
// failover of the server, or once a DBA, a pooler or a proxy has ended
// backends (pg_terminate_backend), idle connections of the pool are
// closed at the server's end, and the first BEGIN on each fails: over a
// unix socket its write fails before anything is sent (pgconn.SafeToRetry),
// over TCP the write goes out and the answer is the FATAL the server sent
// on its way out, or the connection's end (connLost). A failed BEGIN
// changed nothing, and pgx drops the connection: another is asked for, up
// to the pool's size and one new connection. Otherwise every such
// connection failed a request with 503 while the database was up.
func (db *DB) begin(ctx context.Context, opts pgx.TxOptions) (tx pgx.Tx, err error) {
	err = db.pastDeadConns(ctx, func() (err error) {
		tx, err = db.pool.BeginTx(ctx, opts)
		return err
	})
	return tx, err
}

// pastDeadConns runs op, which takes a pooled connection for a statement
// that changes nothing if it fails there (BEGIN, a NOTIFY outside a
// transaction, which is harmless to send twice), again while it fails on a
// connection the server had closed (see begin), up to the pool's size and
// one new connection.
func (db *DB) pastDeadConns(ctx context.Context, op func() error) error {
	for tries := db.pool.Config().MaxConns; ; tries-- {
		err := op()
		if err == nil || tries <= 0 || !pgconn.SafeToRetry(err) && !connLost(err) || ctx.Err() != nil {
			return err
		}
	}
}

// run is one attempt: begin, fn, flush queued audit events, commit. retry
// reports a failure that a rerun may not meet: a conflict (see retryable;
// in an Update only), or a connection lost before COMMIT (see connLost).
//
// quiet runs fn with BroadcastAtCommit off; without it, a COMMIT that
// fails for want of room in the NOTIFY queue after fn queued a notice is
// reported for a rerun too (see runs, notifyQueueFull).
func (db *DB) run(ctx context.Context, writable, quiet bool, fn func(store.Tx) error) (err error, retry bool) {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if writable {
		// No access mode: the server's default applies, so that a database
		// or role a DBA set default_transaction_read_only on (to fence an
		// old primary) takes no writes (see ErrReadOnlyDatabase). The
		// isolation level stays explicit: the package doc's locking relies on it.
		opts = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	}
	bctx, cancel := db.bound(ctx)
	var ptx pgx.Tx
	// A burst beyond the connections the server lets this instance open
	// waits for one of the pool's, within the bound (docs/cluster.md, Sizing).
	err = db.waitRefused(ctx, bctx, func() (err error) {
		ptx, err = db.begin(bctx, opts)
		return err
	})
	cancel()
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", db.unanswered(ctx, err)), false
	}
	// Commit and rollback give the connection back to the pool: wake
	// those waiting for one.
	defer db.connFreed()
	rollback := func() {
		rctx, cancel := db.bound(context.WithoutCancel(ctx))
		defer cancel()
		_ = ptx.Rollback(rctx)
	}
	t := &tx{db: db, ctx: ctx, q: ptx, writable: writable, quiet: quiet}
	defer func() {
		if p := recover(); p != nil {
			// Give the connection back to the pool clean before the
			// panic goes on.
			rollback()
			panic(p)
		}
	}()
	fnErr := fn(t)
	if fnErr == nil && t.failed == nil && writable {
		fnErr = t.flushAudit()
	}
	if fnErr != nil || t.failed != nil {
		// A connection lost before COMMIT (seen by a statement of this
		// transaction, not by Commit): the server rolls back what it had,
		// so fn may run again, as after a conflict; a View's reads changed
		// nothing either. connLost covers the errors pgconn marks
		// SafeToRetry on a connection it closed (a failed write,
		// ErrConnClosed); the one other, a context ended before the
		// statement was sent, is the caller's. A conflict reruns only an
		// Update: a View takes no locks, and the server's error is its
		// answer (see View).
		lost := t.failed != nil && connLost(t.failed) && ptx.Conn().IsClosed()
		rollback()
		switch {
		case t.failed != nil && (lost || writable && retryable(t.failed)):
			return t.failed, true
		case fnErr != nil && writable && retryable(fnErr):
			return fnErr, true
		case fnErr != nil:
			return fnErr, false
		default:
			// fn went on after one of our statements failed, and the
			// transaction was aborted there: report that failure.
			return t.explain(t.failed), false
		}
	}
	cctx, cancel := db.bound(ctx)
	err = ptx.Commit(cctx)
	cancel()
	if err != nil {
		if retryable(err) || t.notified && !quiet && notifyQueueFull(err) {
			return err, true
		}
		if commitUnknown(err) {
			return fmt.Errorf("postgres: commit: %w: %w", store.ErrOutcomeUnknown, db.unanswered(ctx, err)), false
		}
		return fmt.Errorf("postgres: commit: %w", db.unanswered(ctx, err)), false
	}
	return nil, false
}

// commitUnknown reports a COMMIT that failed without an answer from the
// server, once it may have been sent: the connection was lost, or the
// answer did not come in time. The server may have committed (it does once
// it has the message, whatever becomes of the client), so the outcome is
// unknown. An error the server sent (a PgError, a commit it answered with
// ROLLBACK) is an answer, and an error pgconn raised before it sent
// anything (SafeToRetry: the context had ended) means nothing was
// committed; but pgconn reports a connection lost after the COMMIT went
// out as "conn closed" (ErrConnClosed), which it marks SafeToRetry too.
func commitUnknown(err error) bool {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe), errors.Is(err, pgx.ErrTxCommitRollback), errors.Is(err, pgx.ErrTxClosed):
		return false
	case errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	return !pgconn.SafeToRetry(err)
}

// unanswered scrubs err and, when it is bound's deadline rather than the
// caller's, says so: the server did not answer in time.
func (db *DB) unanswered(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("no answer from the database within %v: %w", db.answerWithin, db.scrub(err))
	}
	return db.scrub(err)
}

// retryable reports the failures a rerun of the transaction may avoid:
// deadlock and serialization failure, and a unique or foreign-key
// violation, which our writes meet only when a concurrent transaction
// committed what this one could not lock out (every write locks and checks
// its keys first); and errJoinedMeanwhile and errMemberDeletedMeanwhile,
// conflicts found by this package rather than the server.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return errors.Is(err, errJoinedMeanwhile) || errors.Is(err, errMemberDeletedMeanwhile)
	}
	switch pe.Code {
	case "40001", "40P01", "23505", "23503":
		return true
	}
	return false
}

// notifyQueueFull reports the server's "too many notifications in the
// NOTIFY queue" (program_limit_exceeded), which PostgreSQL raises at the
// COMMIT of a transaction that sent a notice, not at pg_notify.
func notifyQueueFull(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "54000"
}

// keyLock returns the advisory lock that stands for one value of a unique
// key (an IdP link, a folded email, …): a hash of the deployment, the kind
// of key and its parts. Transactions that read or take the value lock it
// first (see the package doc). It returns 0, "no lock", for an empty
// value, which nothing owns.
func (db *DB) keyLock(kind string, parts ...string) int64 {
	if len(parts) == 0 || parts[len(parts)-1] == "" {
		return 0
	}
	h := sha256.New()
	for _, p := range append([]string{db.lockSpace, kind}, parts...) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	k := int64(binary.BigEndian.Uint64(h.Sum(nil)))
	if k == 0 {
		k = 1
	}
	return k
}

// ---- secrets in errors ----

// secretsOf returns the strings an error must never carry: the DSN itself
// and its password, raw and as it may appear escaped.
func secretsOf(dsn string) []string {
	out := []string{dsn}
	var pws []string
	// A URL by pgconn's rule (its scheme), else keyword/value: a URL may
	// carry the password in its user info, in its query, or both.
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			if p, ok := u.User.Password(); ok {
				pws = append(pws, p)
			}
			pws = append(pws, u.Query()["password"]...)
		}
	} else {
		pws = append(pws, keywordValue(dsn, "password"))
	}
	for _, pw := range pws {
		if pw != "" {
			out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw), url.UserPassword("", pw).String()[1:])
		}
	}
	return out
}

// keywordValue returns the value of key in a keyword/value DSN, read as
// libpq reads one: "key = value" with spaces around "=" allowed, values
// single-quoted or bare, backslash escaping the next character. A search
// for "password=" would miss "password = x", which pgconn reads, and take
// "sslpassword=" for it. The last of repeated keys wins, as in libpq. A
// DSN that stops parsing yields what came before.
func keywordValue(dsn, key string) string {
	var found string
	rest := strings.TrimLeft(dsn, dsnSpace)
	for rest != "" {
		i := strings.IndexAny(rest, "="+dsnSpace)
		if i <= 0 {
			break
		}
		k := rest[:i]
		rest = strings.TrimLeft(rest[i:], dsnSpace)
		if !strings.HasPrefix(rest, "=") {
			break
		}
		v, after, ok := keywordValueAt(strings.TrimLeft(rest[1:], dsnSpace))
		if !ok {
			break
		}
		if k == key {
			found = v
		}
		rest = strings.TrimLeft(after, dsnSpace)
	}
	return found
}

// dsnSpace is the white space libpq skips between a keyword DSN's parts.
const dsnSpace = " \t\n\r\f\v"

// keywordValueAt reads the value s starts with: single-quoted (ok only if
// closed) or up to the next space; a backslash escapes the next byte.
func keywordValueAt(s string) (value, rest string, ok bool) {
	quoted := strings.HasPrefix(s, "'")
	if quoted {
		s = s[1:]
	}
	var v strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			v.WriteByte(s[i])
		case quoted && c == '\'':
			return v.String(), s[i+1:], true
		case !quoted && strings.IndexByte(dsnSpace, c) >= 0:
			return v.String(), s[i:], true
		default:
			v.WriteByte(c)
		}
	}
	return v.String(), "", !quoted
}

// scrubbed is an error whose message had secrets replaced. It unwraps to
// the original so that errors.Is keeps working (context.Canceled, PgError
// codes); code that unwraps and prints the original is on its own.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "[redacted]")
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

func (db *DB) scrub(err error) error { return scrub(err, db.secrets) }

// parseError explains a DSN that does not parse without quoting it or any
// parser's text about it: pgx's message quotes the string, and url.Parse's
// quotes the part it choked on, which for a password with an unencoded
// "/" is the user name and the password's first part ("invalid port
// \":Xq7Kp\" after host"). Redacting what secretsOf found cannot help: a
// DSN that does not parse has no password it can find. So the message
// names only the usual cause.
func parseError(dsn string) error {
	hint := ""
	if isURL(dsn) {
		hint = " (in a URL, percent-encode the characters / @ : % ? # of the user name and password, or use key=value pairs)"
	}
	return fmt.Errorf("the connection string (DSN, not shown: it may hold a password) does not parse%s; "+
		"it is a postgres://user:password@host:port/database URL or key=value pairs", hint)
}

// isURL reports whether dsn is in URL form, as pgconn decides it.
func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// HasPassword reports whether a DSN carries a password.
func HasPassword(dsn string) bool { return len(secretsOf(dsn)) > 1 }

// Describe names the database a DSN points at for messages and logs, as
// host:port/database and without user or password; "(connection string
// not shown)" when it does not parse, or when part of its password may
// have been read as host, port or database (userInfoSound).
func Describe(dsn string) string {
	const notShown = "(connection string not shown)"
	if !userInfoSound(dsn) {
		return notShown
	}
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return notShown
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))) + "/" + c.Database
}

// userInfoSound reports whether a URL DSN's user info, if any, is read as
// user info, and nothing of it as host, port or database; key=value DSNs
// quote their values and are sound. pgconn, like libpq, ends the user info
// at the first "@" before any "/": a password with an unencoded "/" (as
// base64 passwords have) ends the host part early, so that in
// postgres://sso:1234/s3cr3t@db/sso the user name is the host, 1234 the
// port and "s3cr3t@db/sso" the database, which parses without complaint;
// one with an unencoded "@" leaves its tail in the host. So a URL is sound
// with no "@", or exactly one before its path.
func userInfoSound(dsn string) bool {
	rest, ok := strings.CutPrefix(dsn, "postgres://")
	if !ok {
		if rest, ok = strings.CutPrefix(dsn, "postgresql://"); !ok {
			return true
		}
	}
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return true
	}
	slash := strings.IndexByte(rest, '/')
	return strings.Count(rest, "@") == 1 && (slash < 0 || at < slash)
}
