package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
)

// A database a version 1 build made (an audit trail in it) is migrated to
// the current version on Open, its events kept, and an audit query by type
// alone then reads the type's index instead of every event.
func TestMigrateFromVersion1AuditTypeIndex(t *testing.T) {
	ctx := context.Background()
	dsn, conn := databaseAt(t, 1)
	// 50,000 events as version 1 wrote them; one in a thousand is rare.
	_, err := conn.Exec(ctx, `INSERT INTO sso_audit (seq, time_ns, type, user_id, data)
			SELECT i, i, CASE WHEN i % 1000 = 0 THEN 'rare' ELSE 'common' || (i % 5) END, '',
				json_build_object('seq', i, 'type', CASE WHEN i % 1000 = 0 THEN 'rare' ELSE 'common' || (i % 5) END,
					'time', '2026-01-01T00:00:00Z')
			FROM generate_series(1, 50000) AS i;
		SELECT setval('sso_audit_seq', 50000)`)
	if err != nil {
		t.Fatal(err)
	}

	db := openDSN(t, dsn)
	var version int
	var index string
	if err := conn.QueryRow(ctx, "SELECT version, coalesce(to_regclass('sso_audit_type')::text, '') FROM sso_schema").Scan(&version, &index); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion || index != "sso_audit_type" {
		t.Fatalf("after Open: schema version %d, index %q; want %d, sso_audit_type", version, index, SchemaVersion)
	}
	if _, err := conn.Exec(ctx, "ANALYZE sso_audit"); err != nil {
		t.Fatal(err)
	}

	var events []store.Event
	view(t, db, func(tx store.Tx) error {
		events, err = tx.AuditEvents(store.AuditQuery{Type: "rare", After: 10000, Limit: 10})
		return err
	})
	if len(events) != 10 || events[0].Seq != 11000 || events[9].Seq != 20000 {
		t.Errorf("rare events after 10000: %d, from %v", len(events), events)
	}
	// The statement AuditEvents sends for a type alone (see there).
	rows, err := conn.Query(ctx, "EXPLAIN SELECT seq, data FROM sso_audit WHERE seq > 10000 AND type = 'rare' ORDER BY seq LIMIT 10")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "sso_audit_type") {
		t.Errorf("an audit query by type does not use sso_audit_type:\n%s", strings.Join(plan, "\n"))
	}

	// New events are numbered after the old ones and found by type.
	update(t, db, func(tx store.Tx) error { return tx.Audit(store.Event{Type: "rare", Time: time.Now()}) })
	view(t, db, func(tx store.Tx) error {
		events, err = tx.AuditEvents(store.AuditQuery{Type: "rare", After: 48999})
		return err
	})
	if len(events) != 3 || events[2].Seq != 50001 {
		t.Errorf("rare events after 48999: %+v", events)
	}
}
