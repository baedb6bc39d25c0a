package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrReadOnlyDatabase means the server takes no writes: it is a hot
// standby (a DNS name that still points at the old primary's replica after
// a failover, a DSN naming a replica), or a DBA set
// default_transaction_read_only on for the database, the role or the
// server (to fence an old primary, or for maintenance). Read-write
// transactions begin in the server's default access mode, so that such a
// fence holds (see run); Open refuses such a database (see migrate), and
// a write that meets one later fails with this error.
var ErrReadOnlyDatabase = errors.New("the database is read-only (a hot standby, or default_transaction_read_only): " +
	"point the DSN at the primary (target_session_attrs=read-write with several hosts)")

// readOnlyDatabase reports the server refusing a write because it takes
// none: SQLSTATE 25006 read_only_sql_transaction (a write in a read-write
// transaction that began read-only by default, or on a standby), or
// 0A000 feature_not_supported about recovery ("cannot set transaction
// read-write mode during recovery", on a standby).
func readOnlyDatabase(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "25006" || pe.Code == "0A000" && strings.Contains(pe.Message, "recovery")
}

// explain returns a statement's error for fn: scrubbed, with the cause
// said where it is not plain (see unanswered, ErrReadOnlyDatabase).
func (t *tx) explain(err error) error {
	if t.writable && readOnlyDatabase(err) {
		return fmt.Errorf("%w: %w", ErrReadOnlyDatabase, t.db.unanswered(t.ctx, err))
	}
	return t.db.unanswered(t.ctx, err)
}

// readOnlyRefused is Open's error for a database that takes no writes
// (see migrate): an instance that started on it would answer every
// sign-in, SCIM write and last-seen flush with an error, while its reads
// work; failing to start (or reload) says why.
func readOnlyRefused(inRecovery bool) error {
	if inRecovery {
		return fmt.Errorf("postgres: %w; this server is a hot standby (pg_is_in_recovery() is true)", ErrReadOnlyDatabase)
	}
	return fmt.Errorf("postgres: %w; default_transaction_read_only is on for this database, role or server", ErrReadOnlyDatabase)
}
