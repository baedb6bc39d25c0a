package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestQueueWatch: the listener warns about the NOTIFY queue as soon as its
// usage rises above half, then at most once a minute while it stays
// there, and at once again after it fell and rose anew. Nothing warned
// before the queue was full, when every notice-sending sign-in failed.
func TestQueueWatch(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var w queueWatch
	for _, step := range []struct {
		after time.Duration // since start
		usage float64
		want  bool
	}{
		{0, 0, false},
		{5 * time.Second, 0.5, false},
		{10 * time.Second, 0.51, true},
		{15 * time.Second, 0.6, false},
		{69 * time.Second, 0.99, false},
		{70 * time.Second, 0.99, true},
		{75 * time.Second, 1, false},
		{80 * time.Second, 0, false},
		{85 * time.Second, 0.7, true},
		{90 * time.Second, 0.7, false},
	} {
		if got := w.warn(step.usage, start.Add(step.after)); got != step.want {
			t.Errorf("at +%v, usage %.2f: warn %v, want %v", step.after, step.usage, got, step.want)
		}
	}
}

// TestListenerWarnsOfAFillingQueue: the listener reads the NOTIFY queue's
// usage while it is quiet and, as often, between the notices of a steady
// stream (which leaves it no quiet while), and warns above half; a query
// the server answers with an error (the function's EXECUTE revoked) is no
// lost connection: the listener stays subscribed (a resubscription
// delivers All). NotifyQueueUsage, which the metrics read, gives the last
// reading, and none while the server refuses one.
//
// A pg_notification_queue_usage in public, put before pg_catalog on the
// database's search_path, stands in for the queue (filling it takes 8 GB).
func TestListenerWarnsOfAFillingQueue(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `
		CREATE TABLE test_queue (usage float8, refuse bool NOT NULL);
		INSERT INTO test_queue VALUES (0.9, false);
		CREATE FUNCTION public.pg_notification_queue_usage() RETURNS float8 LANGUAGE plpgsql AS $$
		BEGIN
			IF (SELECT refuse FROM test_queue) THEN
				RAISE EXCEPTION 'permission denied for function pg_notification_queue_usage' USING ERRCODE = '42501';
			END IF;
			RETURN (SELECT usage FROM test_queue);
		END $$;
		DO $$ BEGIN
			EXECUTE format('ALTER DATABASE %I SET search_path = public, pg_catalog', current_database());
		END $$;
	`); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	db := openConfig(t, Config{DSN: dsn, Logger: zap.New(core)})
	other := openDSN(t, dsn)
	if u, ok := db.NotifyQueueUsage(); ok {
		t.Errorf("NotifyQueueUsage before the listener read it: %v, want none", u)
	}
	l := listen(t, db)
	if inv := l.next(t, 10*time.Second); !inv.All {
		t.Fatalf("first call %+v, want All", inv)
	}
	warned := func() bool {
		return logs.FilterMessageSnippet("NOTIFY queue is filling up").Len() > 0
	}

	// A notice every 0.5 s for longer than the listener's quiet while.
	for i := 0; !warned() && i < int(3*listenPing/(500*time.Millisecond)); i++ {
		time.Sleep(500 * time.Millisecond)
		user := fmt.Sprintf("u-%d", i)
		if err := other.Broadcast(ctx, store.Invalidation{Users: []string{user}}); err != nil {
			t.Fatal(err)
		}
		if inv := l.next(t, 10*time.Second); len(inv.Users) != 1 || inv.Users[0] != user {
			t.Fatalf("heard %+v, want %s", inv, user)
		}
	}
	if !warned() {
		t.Fatalf("no warning of a queue 90%% full under a steady stream of notices within %v", 3*listenPing)
	}
	if u, ok := db.NotifyQueueUsage(); !ok || u != 0.9 {
		t.Errorf("NotifyQueueUsage after the warning: %v, %v; want 0.9, true", u, ok)
	}

	if _, err := conn.Exec(ctx, "UPDATE test_queue SET refuse = true"); err != nil {
		t.Fatal(err)
	}
	// Two quiet whiles: the listener reads the usage at least once.
	l.quiet(t, 2*listenPing+time.Second)
	if err := other.Broadcast(ctx, store.Invalidation{Users: []string{"u-after"}}); err != nil {
		t.Fatal(err)
	}
	if inv := l.next(t, 10*time.Second); len(inv.Users) != 1 || inv.Users[0] != "u-after" {
		t.Fatalf("heard %+v, want u-after", inv)
	}
	// The metric an operator alerts on must not keep showing 0.9 once the
	// listener can no longer read the usage.
	if u, ok := db.NotifyQueueUsage(); ok {
		t.Errorf("NotifyQueueUsage once the server refuses to tell: %v, want none", u)
	}
}
