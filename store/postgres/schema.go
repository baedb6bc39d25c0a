package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The schema is a series of SQL files, migrations/NNN_name.sql, applied in
// order; the database's version is the number of the last one applied. A
// new release that changes the schema adds a file; files are never edited
// once released. Migrations are additive (new tables, columns with
// defaults, indexes) so that instances of the previous release keep
// working on the migrated database during a rolling upgrade
// (docs/cluster.md).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaVersion is the newest schema version this build knows (the number
// of its last migration; a test keeps the two equal).
const SchemaVersion = 3

// ErrNewerSchema means the database was migrated by a newer caddy-sso. This
// build does not know what that version changed and refuses to write.
var ErrNewerSchema = errors.New("database schema is newer than this build supports")

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order, checking that they
// are numbered 1, 2, 3... without gaps.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s is not named NNN_name.sql", e.Name())
		}
		if v != len(out)+1 {
			return nil, fmt.Errorf("migration %s: want number %d", e.Name(), len(out)+1)
		}
		raw, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(raw)})
	}
	return out, nil
}

// migrate brings the schema to SchemaVersion in one transaction that holds
// an advisory lock, so that instances starting together take turns: the
// first migrates, the others then find the schema current. DDL is
// transactional in PostgreSQL, so a failed migration leaves the previous
// version intact. It also fixes the audit lock key (see flushAudit).
//
// The lock keys are hashes of the current schema's name, so that two
// caddy-sso deployments in two schemas of one database do not wait for
// each other.
//
// A database that takes no writes (a hot standby, or
// default_transaction_read_only on) is refused with ErrReadOnlyDatabase
// unless allowReadOnly, and cannot be migrated either way.
func (db *DB) migrate(ctx context.Context, allowReadOnly bool) error {
	all, err := migrations()
	if err != nil {
		return fmt.Errorf("postgres: embedded schema: %w", err)
	}
	ptx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", db.scrub(err))
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()

	var schemaLock int64
	var readOnly, inRecovery bool
	err = ptx.QueryRow(ctx, `SELECT hashtextextended('caddy-sso schema:' || coalesce(current_schema(), ''), 0),
		hashtextextended('caddy-sso audit:' || coalesce(current_schema(), ''), 0), coalesce(current_schema(), ''),
		current_setting('transaction_read_only') = 'on', pg_is_in_recovery()`).
		Scan(&schemaLock, &db.auditLock, &db.lockSpace, &readOnly, &inRecovery)
	if err != nil {
		return fmt.Errorf("postgres: schema: %w", db.scrub(err))
	}
	// This transaction began in the server's default access mode, as
	// Update's do: read-only on a standby or under
	// default_transaction_read_only. The schema check below only reads,
	// so without this an instance would start there and fail every write.
	if readOnly && !allowReadOnly {
		return readOnlyRefused(inRecovery)
	}
	// Building indexes on a big table may take longer than the statement
	// timeout that protects sign-ins.
	if _, err := ptx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return fmt.Errorf("postgres: schema: %w", db.scrub(err))
	}
	if _, err := ptx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLock); err != nil {
		return fmt.Errorf("postgres: schema: wait for the migration lock: %w", db.scrub(err))
	}
	version, err := schemaVersion(ctx, ptx)
	if err != nil {
		return fmt.Errorf("postgres: schema: %w", db.scrub(err))
	}
	if version > SchemaVersion {
		return fmt.Errorf("postgres: the database has schema version %d, and this build of caddy-sso supports up to %d; "+
			"upgrade caddy-sso on this instance (another instance has already migrated the database): %w",
			version, SchemaVersion, ErrNewerSchema)
	}
	if version == SchemaVersion {
		return nil
	}
	if readOnly {
		return fmt.Errorf("postgres: the database has schema version %d, and this build needs %d, which only a database that takes writes can be migrated to: %w",
			version, SchemaVersion, ErrReadOnlyDatabase)
	}
	for _, m := range all[version:] {
		if _, err := ptx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("postgres: schema: migration %s: %w", m.name, db.scrub(err))
		}
	}
	if _, err := ptx.Exec(ctx, "UPDATE sso_schema SET version = $1", SchemaVersion); err != nil {
		return fmt.Errorf("postgres: schema: record version %d: %w", SchemaVersion, db.scrub(err))
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: schema: commit migration to version %d: %w", SchemaVersion, db.scrub(err))
	}
	return nil
}

// schemaVersion reads the database's schema version, 0 for a database
// caddy-sso has not set up.
func schemaVersion(ctx context.Context, q pgx.Tx) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('sso_schema') IS NOT NULL").Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, "SELECT version FROM sso_schema").Scan(&v); err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	return v, nil
}
