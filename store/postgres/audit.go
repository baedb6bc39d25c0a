package postgres

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
)

// Audit queues e; flushAudit numbers and inserts the queue just before the
// commit (see the package doc), so a transaction that rolls back draws no
// number.
func (t *tx) Audit(e store.Event) error {
	if err := t.mustWrite("audit"); err != nil {
		return err
	}
	e = e.Stamped(time.Now())
	if err := checkEvent(e); err != nil {
		return err
	}
	t.audit = append(t.audit, e)
	return nil
}

// checkEvent refuses what the audit table's text columns cannot hold, at
// Audit rather than at the commit, where the caller could not tell which
// event failed.
func checkEvent(e store.Event) error {
	if !storable(e.Type) || !storable(e.UserID) {
		return fmt.Errorf("postgres: audit %q: type or user id is not UTF-8 text without NUL bytes: %w", e.Type, store.ErrInvalidValue)
	}
	return nil
}

// flushAudit inserts the queued events, numbered in commit order: it takes
// the audit lock (held until the transaction ends, after its commit is
// visible), so no transaction that numbers events later can commit
// earlier.
func (t *tx) flushAudit() error {
	if len(t.audit) == 0 {
		return nil
	}
	var seqs []int64
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1)", t.db.auditLock)
	b.Queue("SELECT nextval('sso_audit_seq') FROM generate_series(1, $1)", len(t.audit)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var s int64
			if err := rows.Scan(&s); err != nil {
				return err
			}
			seqs = append(seqs, s)
		}
		return rows.Err()
	})
	if err := t.batch(b); err != nil {
		return fmt.Errorf("postgres: audit: %w", err)
	}
	if len(seqs) != len(t.audit) {
		return fmt.Errorf("postgres: audit: drew %d sequence numbers for %d events", len(seqs), len(t.audit))
	}
	for i := range t.audit {
		t.audit[i].Seq = uint64(seqs[i]) // nextval is ascending within the statement
	}
	err := t.insertEvents(t.audit)
	t.audit = t.audit[:0]
	return err
}

// flushAuditEarly runs flushAudit before a read of the audit table in the
// same transaction, so the transaction sees its own events.
func (t *tx) flushAuditEarly() error {
	if !t.writable {
		return nil
	}
	return t.flushAudit()
}

func (t *tx) insertEvents(events []store.Event) error {
	n := len(events)
	seqs, times := make([]int64, n), make([]int64, n)
	types, users, data := make([]string, n), make([]string, n), make([]string, n)
	for i, e := range events {
		raw, err := json.Marshal(&e)
		if err != nil {
			return fmt.Errorf("postgres: encode audit event: %w", err)
		}
		seqs[i], times[i], types[i], users[i], data[i] = int64(e.Seq), nanos(e.Time), e.Type, e.UserID, string(raw)
	}
	_, err := t.exec(`INSERT INTO sso_audit (seq, time_ns, type, user_id, data)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::json[])`, seqs, times, types, users, data)
	if err != nil {
		return fmt.Errorf("postgres: audit: %w", err)
	}
	return nil
}

// ImportAuditEvent inserts e with its own Seq and Time and moves the
// sequence past it, under the audit lock.
func (t *tx) ImportAuditEvent(e store.Event) error {
	if err := t.mustWrite("import audit event"); err != nil {
		return err
	}
	if e.Seq == 0 || e.Seq > math.MaxInt64 {
		return fmt.Errorf("postgres: import audit event: seq %d out of range", e.Seq)
	}
	if err := checkEvent(e); err != nil {
		return err
	}
	if err := t.flushAudit(); err != nil {
		return err
	}
	var last int64
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1)", t.db.auditLock)
	b.Queue("SELECT coalesce(max(seq), 0) FROM sso_audit").QueryRow(func(r pgx.Row) error { return r.Scan(&last) })
	if err := t.batch(b); err != nil {
		return fmt.Errorf("postgres: import audit event: %w", err)
	}
	if int64(e.Seq) <= last {
		return fmt.Errorf("postgres: import audit event: seq %d is not after the last stored one, %d", e.Seq, last)
	}
	if err := t.insertEvents([]store.Event{e}); err != nil {
		return err
	}
	// Later Audit calls number after it (and after anything drawn since).
	if _, err := t.exec("SELECT setval('sso_audit_seq', greatest($1, (SELECT last_value FROM sso_audit_seq)))", int64(e.Seq)); err != nil {
		return fmt.Errorf("postgres: import audit event: %w", err)
	}
	return nil
}

// AuditEvents returns matching events in Seq order: Since inclusive, Until
// exclusive. The statement names only the filters in use, so each shape
// gets a plan that uses its index (by user, by type, or the primary key).
func (t *tx) AuditEvents(q store.AuditQuery) ([]store.Event, error) {
	if err := t.flushAuditEarly(); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	if q.After >= math.MaxInt64 {
		return nil, nil
	}
	if !storable(q.UserID) || !storable(q.Type) {
		return nil, nil
	}
	var where strings.Builder
	args := []any{int64(q.After)}
	where.WriteString("seq > $1")
	add := func(cond string, v any) {
		args = append(args, v)
		fmt.Fprintf(&where, " AND %s $%d", cond, len(args))
	}
	if q.UserID != "" {
		add("user_id =", q.UserID)
	}
	if q.Type != "" {
		add("type =", q.Type)
	}
	if !q.Since.IsZero() {
		add("time_ns >=", nanos(q.Since))
	}
	if !q.Until.IsZero() {
		add("time_ns <", nanos(q.Until))
	}
	args = append(args, limit)
	sql := "SELECT seq, data FROM sso_audit WHERE " + where.String() + " ORDER BY seq LIMIT $" + strconv.Itoa(len(args))
	out, err := collect(t, func(r pgx.Row) (e store.Event, err error) {
		var seq int64
		var raw []byte
		if err := r.Scan(&seq, &raw); err != nil {
			return e, err
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return e, fmt.Errorf("decode audit event %d: %w", seq, err)
		}
		e.Seq = uint64(seq)
		return e, nil
	}, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit events: %w", err)
	}
	return out, nil
}

// PruneAudit deletes the oldest events, in Seq order, up to the first one
// not before `before`, at most limit of them, passing over those stamped
// after now (store.Tx).
func (t *tx) PruneAudit(before, now time.Time, limit int) (int, error) {
	if err := t.mustWrite("prune audit"); err != nil {
		return 0, err
	}
	if limit < 1 {
		return 0, fmt.Errorf("postgres: prune audit: limit %d, want at least 1", limit)
	}
	if err := t.flushAudit(); err != nil {
		return 0, err
	}
	n, err := t.exec(`WITH head AS (SELECT seq, time_ns FROM sso_audit WHERE time_ns <= $3 ORDER BY seq LIMIT $2),
			stop AS (SELECT min(seq) AS seq FROM head WHERE time_ns >= $1)
		DELETE FROM sso_audit WHERE seq IN
			(SELECT seq FROM head WHERE seq < coalesce((SELECT seq FROM stop), 9223372036854775807))`, nanos(before), limit, nanos(now))
	if err != nil {
		return 0, fmt.Errorf("postgres: prune audit: %w", err)
	}
	return int(n), nil
}
