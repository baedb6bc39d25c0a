package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// statementTimeouts returns SHOW statement_timeout of n connections of the
// pool held at once, so that at least n-1 of them are new.
func statementTimeouts(t *testing.T, db *DB, n int) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for range n {
		c, err := db.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		var v string
		if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// statement_timeout is set on every connection once it is made, not sent
// as a start-up parameter, which PgBouncer refuses (or, told to ignore it,
// drops, and the server's timeout with it).
func TestStatementTimeoutSetAfterConnect(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	for _, c := range []struct {
		name    string
		dsn     string
		timeout time.Duration
		want    string
	}{
		{"default", dsn, 0, "5s"},
		{"configured", dsn, 1234 * time.Millisecond, "1234ms"},
		// The configured one wins over one in the DSN, which is not sent either.
		{"also in the DSN", dsn + "&statement_timeout=100", 2 * time.Second, "2s"},
		{"no bound", dsn, -1, "0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := Open(context.Background(), Config{DSN: c.dsn, StatementTimeout: c.timeout, MaxConns: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if c.timeout >= 0 {
				for what, params := range map[string]map[string]string{
					"pool":     db.pool.Config().ConnConfig.RuntimeParams,
					"listener": db.conn.RuntimeParams,
				} {
					if v, ok := params["statement_timeout"]; ok {
						t.Errorf("%s start-up parameters hold statement_timeout=%s", what, v)
					}
				}
			}
			for i, got := range statementTimeouts(t, db, 3) {
				if got != c.want {
					t.Errorf("connection %d: statement_timeout = %s, want %s", i, got, c.want)
				}
			}
		})
	}
	if !strings.Contains(dsn, "?") {
		t.Fatalf("the test's DSN %q has no query, so the DSN case above was not one", dsn)
	}
}

// Listen's own connection gets the statement timeout too, as it did as a
// start-up parameter.
func TestListenerConnectionHasStatementTimeout(t *testing.T) {
	db, err := Open(context.Background(), Config{DSN: pgtest.NewDatabase(t), StatementTimeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := pgx.ConnectConfig(context.Background(), db.conn.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var got string
	if err := conn.QueryRow(context.Background(), "SHOW statement_timeout").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "1500ms" {
		t.Errorf("statement_timeout = %s, want 1500ms", got)
	}
}

// The client's bound on a statement counts the waits for the server, not
// the time the caller spends on the rows between them: rows that take
// longer to work on than the whole bound are read to the end. The answer
// (120 KB) is more than the client reads ahead, so the rows after the
// first come off the connection after the bound would have ended, and
// less than the socket buffers, so the server is done long before.
func TestBoundCountsOnlyWaitsForTheServer(t *testing.T) {
	const timeout = 200 * time.Millisecond // the client waits 1.2 s
	db, err := Open(context.Background(), Config{DSN: pgtest.NewDatabase(t), StatementTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const rows, work = 6, 300 * time.Millisecond
	var got int
	start := time.Now()
	err = db.View(context.Background(), func(stx store.Tx) error {
		return stx.(*tx).rows("SELECT repeat('x', 20000) FROM generate_series(1, $1)", []any{rows}, func(r pgx.Rows) error {
			time.Sleep(work)
			got++
			return nil
		})
	})
	if err != nil {
		t.Fatalf("after %v of work on the rows: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if got != rows {
		t.Errorf("read %d rows, want %d", got, rows)
	}

	// The waits still add up to a bound: a statement that keeps the
	// client waiting longer fails with the server's timeout, or the
	// client's.
	err = db.View(context.Background(), func(stx store.Tx) error {
		return stx.(*tx).rows("SELECT pg_sleep(0.1) FROM generate_series(1, 30)", nil, func(pgx.Rows) error { return nil })
	})
	if err == nil || !strings.Contains(err.Error(), "statement timeout") && !strings.Contains(err.Error(), "no answer from the database") {
		t.Errorf("a 3 s statement under a %v timeout: %v", timeout, err)
	}
}

// waitCtx: the clock stops while paused, the context ends with
// DeadlineExceeded once the waits add up, and with its parent. The budget
// is a second, so a loaded machine that stalls the test between
// boundWaits and pause does not spend it; the bound on the end only
// catches a hang, as the timer's goroutine may run late.
func TestWaitCtx(t *testing.T) {
	db := &DB{answerWithin: time.Second}
	ctx, pause, resume, release := db.boundWaits(context.Background())
	pause()
	time.Sleep(1500 * time.Millisecond)
	if err := ctx.Err(); err != nil {
		t.Fatalf("ended while paused: %v", err)
	}
	resume()
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("did not end")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", ctx.Err())
	}
	release()

	parent, cancel := context.WithCancel(context.Background())
	ctx, _, _, release = db.boundWaits(parent)
	defer release()
	cancel()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("Err after the parent's cancel = %v, want Canceled", ctx.Err())
	}

	// Many goroutines pausing and resuming race with the timer and
	// release without a data race.
	ctx, pause, resume, release = db.boundWaits(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				pause()
				resume()
			}
		})
	}
	wg.Wait()
	release()
	if ctx.Err() == nil {
		t.Error("not ended after release")
	}
}
