package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// limitedRole creates a role that owns the public schema of a new
// database and may hold at most limit connections at once, and returns
// the database's connection string as that role and a function that sets
// the role's limit. PostgreSQL refuses its connections beyond the limit
// with SQLSTATE 53300, as it refuses everyone's at max_connections
// (superusers are exempt from role limits, hence the role).
func limitedRole(t *testing.T, limit int) (dsn string, setLimit func(int)) {
	t.Helper()
	admin := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	role := fmt.Sprintf("sso_lim_%d", time.Now().UnixNano())
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN CONNECTION LIMIT %d", role, limit),
		"GRANT ALL ON DATABASE " + conn.Config().Database + " TO " + role,
		"ALTER SCHEMA public OWNER TO " + role,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = conn.Close(t.Context())
	// Runs before NewDatabase's cleanup drops the database, and after
	// the test's own, which close the role's connections.
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
			return
		}
		defer c.Close(ctx)
		for _, q := range []string{"DROP OWNED BY " + role + " CASCADE", "DROP ROLE " + role} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest's DSN is not a URL: %v", err)
	}
	u.User = url.User(role)
	return u.String(), func(n int) {
		c, err := pgx.Connect(t.Context(), admin)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(t.Context())
		if _, err := c.Exec(t.Context(), fmt.Sprintf("ALTER ROLE %s CONNECTION LIMIT %d", role, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// updateBurst runs n Updates at once, each holding its transaction for
// hold, and returns their errors.
func updateBurst(ctx context.Context, db *DB, n int, hold time.Duration) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.Update(ctx, func(tx store.Tx) error {
				if err := tx.PutUser(&store.User{Email: fmt.Sprintf("burst%d@x.io", i)}); err != nil {
					return err
				}
				time.Sleep(hold)
				return nil
			})
		})
	}
	wg.Wait()
	return errs
}

// A burst beyond the connections the server lets this instance open
// waits for the instance's pooled connections (docs/cluster.md, Sizing)
// instead of failing at once with "too many connections".
func TestBurstBeyondServerLimitQueues(t *testing.T) {
	dsn, _ := limitedRole(t, 3)
	core, logs := observer.New(zap.WarnLevel)
	db, err := Open(t.Context(), Config{DSN: dsn, MaxConns: 10, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n, hold = 8, 200 * time.Millisecond
	start := time.Now()
	errs := updateBurst(t.Context(), db, n, hold)
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	// 8 transactions of 200 ms on 3 connections: three rounds.
	t.Logf("%d updates holding %v each on 3 connections took %v", n, hold, took.Round(time.Millisecond))
	if st := db.pool.Stat(); st.TotalConns() > 3 {
		t.Errorf("pool holds %d connections, more than the role may", st.TotalConns())
	}
	var count int
	if err := db.pool.QueryRow(t.Context(), "SELECT count(*) FROM sso_users").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d users stored, want %d", count, n)
	}
	// The operator learns why, once (the warning is throttled).
	warned := logs.FilterMessageSnippet("max_connections").All()
	if len(warned) != 1 {
		t.Errorf("%d warnings naming max_connections, want 1: %v", len(warned), logs.All())
	} else {
		t.Logf("warning: %s %v", warned[0].Message, warned[0].ContextMap())
	}
}

// Refused a new connection while holding none, an Update fails at once
// with the server's reason; holding some that stay busy, it fails at the
// bound on a transaction's wait, saying why.
func TestRefusedConnectionFailsClearly(t *testing.T) {
	dsn, setLimit := limitedRole(t, 1)
	const timeout = time.Second // answerWithin: 2 s
	db, err := Open(t.Context(), Config{DSN: dsn, MaxConns: 10, StatementTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	noop := func(tx store.Tx) error { return nil }

	t.Run("holding one that stays busy", func(t *testing.T) {
		release := make(chan struct{})
		held := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- db.Update(t.Context(), func(tx store.Tx) error {
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		start := time.Now()
		err := db.Update(t.Context(), noop)
		took := time.Since(start)
		close(release)
		if err := <-done; err != nil {
			t.Errorf("the update holding the connection: %v", err)
		}
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		checkRefused(t, err)
		if want := db.answerWithin; took < want-100*time.Millisecond || took > want+time.Second {
			t.Errorf("failed after %v, want about %v (the bound on a transaction's wait)", took, want)
		}
		if err != nil && !strings.Contains(err.Error(), "free within") {
			t.Errorf("error does not say that no connection was free in time: %v", err)
		}
	})

	t.Run("holding none", func(t *testing.T) {
		setLimit(0)
		db.pool.Reset() // closes the idle connection
		start := time.Now()
		err := db.Update(t.Context(), noop)
		took := time.Since(start)
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		checkRefused(t, err)
		if took > time.Second {
			t.Errorf("failed after %v, want at once: no connection of the instance's will be released", took)
		}
		if err != nil && !strings.Contains(err.Error(), "holds none") {
			t.Errorf("error does not say that the instance holds no connection: %v", err)
		}
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		setLimit(1)
		release := make(chan struct{})
		held := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- db.Update(t.Context(), func(tx store.Tx) error {
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := db.Update(ctx, noop)
		took := time.Since(start)
		close(release)
		if err := <-done; err != nil {
			t.Errorf("the update holding the connection: %v", err)
		}
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		if !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
			t.Errorf("Update with a context ending after 300 ms: %v after %v, want the context's error at once", err, took)
		}
	})
}

// checkRefused fails t unless err is the server's refusal of a connection.
func checkRefused(t *testing.T, err error) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" {
		t.Errorf("got %v, want the server's refusal (SQLSTATE 53300)", err)
	}
}
