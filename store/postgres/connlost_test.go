package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// Connections the server closes under a running instance: a DBA's or a
// pooler's pg_terminate_backend, idle_in_transaction_session_timeout, a
// proxy's reset. Each test runs over the unix socket and over TCP: the two
// fail differently. Over the socket the client's next write fails (EPIPE,
// which pgconn marks safe to retry when nothing was sent); over TCP the
// write succeeds and the server's FATAL, queued when it ended the
// session, is the answer, an error pgconn does not mark so.

// transports returns the database dsn names as reached over the unix
// socket and over TCP (with a password, as a deployment connects); admin
// is the server's superuser DSN.
func transports(t *testing.T, admin, dsn string) map[string]string {
	t.Helper()
	return map[string]string{"socket": dsn, "tcp": tcpDSN(t, admin, dsn)}
}

// backendsToEnd makes a test database, with its schema (owned by the
// test's superuser), and returns its DSNs by transport (transports) and a
// superuser connection that ends backends (terminate).
func backendsToEnd(t *testing.T) (dsns map[string]string, admin *pgx.Conn) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	openDSN(t, dsn).Close()
	admin = adminConn(t)
	return transports(t, pgtest.AdminDSN(t), dsn), admin
}

// tcpDSN returns a DSN for the database dsn names, over TCP on 127.0.0.1
// as a superuser role with a password of its own, dropped when the test
// ends (with what it owns there: the schema, when it opened the database
// first); adminDSN is the server's superuser DSN.
func tcpDSN(t *testing.T, adminDSN, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	role := fmt.Sprintf("sso_tcp_%d", time.Now().UnixNano())
	const password = "tcp-Pa55word"
	// On the test's database, whose connections its cleanup may drop.
	asAdmin := func(ctx context.Context, sql ...string) error {
		c, err := pgx.Connect(ctx, pgtest.WithDatabase(adminDSN, cfg.Database))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		for _, s := range sql {
			if _, err := c.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := asAdmin(t.Context(), "CREATE ROLE "+role+" LOGIN SUPERUSER PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// DROP OWNED works in the current database: the test's.
		_ = asAdmin(context.Background(), "DROP OWNED BY "+role, "DROP ROLE "+role)
	})
	return (&url.URL{Scheme: "postgres", User: url.UserPassword(role, password),
		Host: fmt.Sprintf("127.0.0.1:%d", cfg.Port), Path: "/" + cfg.Database, RawQuery: "sslmode=disable"}).String()
}

// adminConn is a superuser connection to the test server, closed when the
// test ends.
func adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), pgtest.AdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// fillPool makes the pool hold n open connections at once.
func fillPool(t *testing.T, db *DB, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := db.pool.Exec(context.Background(), "SELECT pg_sleep(0.05)"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := db.pool.Stat().TotalConns(); int(got) != n {
		t.Fatalf("the pool holds %d connections, want %d", got, n)
	}
}

// terminate ends the backends with the pids, as a DBA does, and waits until
// they are gone, so that what they sent on their way out (over TCP, a
// FATAL) is there for the client to read.
func terminate(t *testing.T, admin *pgx.Conn, pids ...int) {
	t.Helper()
	ctx := t.Context()
	for _, pid := range pids {
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var left int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d terminated backends still there after 10s", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backendPIDs returns the pids of the backends of the store's database, but
// the admin connection's.
func backendPIDs(t *testing.T, admin *pgx.Conn, db *DB) []int {
	t.Helper()
	var name string
	if err := db.pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	var pids []int
	if err := admin.QueryRow(t.Context(), "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
		name).Scan(&pids); err != nil {
		t.Fatal(err)
	}
	return pids
}

// After the server ended the pool's idle connections (the database up all
// along), the requests that follow each get a live connection: none fails.
// Over TCP each dead connection's BEGIN used to fail with the server's
// FATAL 57P01 ("terminating connection due to administrator command"), a
// 503 for a user, once per pooled connection.
func TestTerminatedIdleConnectionsFailNoRequest(t *testing.T) {
	dsns, admin := backendsToEnd(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			const conns = 4
			db, err := Open(context.Background(), Config{DSN: dsn, MaxConns: conns})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fillPool(t, db, conns)
			terminate(t, admin, backendPIDs(t, admin, db)...)
			for i := range 6 {
				var err error
				if i%2 == 0 {
					err = db.Update(context.Background(), func(tx store.Tx) error {
						return tx.PutUser(&store.User{Email: fmt.Sprintf("%s-%d@example.com", name, i), Active: true})
					})
				} else {
					err = db.View(context.Background(), func(tx store.Tx) error {
						_, err := tx.UserByEmail(fmt.Sprintf("%s-%d@example.com", name, i-1))
						return err
					})
				}
				if err != nil {
					t.Errorf("request %d after the pool's connections were ended: %v", i, err)
				}
			}
		})
	}
}

// poolPIDs fills the pool with n connections and returns their backends'
// pids.
func poolPIDs(t *testing.T, db *DB, n int) []int {
	t.Helper()
	var pids []int
	for range n {
		c, err := db.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		pids = append(pids, int(c.Conn().PgConn().PID()))
	}
	return pids
}

// killOwnBackend ends the backend of the transaction stx runs on.
func killOwnBackend(t *testing.T, admin *pgx.Conn, stx store.Tx) {
	t.Helper()
	var pid int
	if err := stx.(*tx).q.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	terminate(t, admin, pid)
}

// A backend ended in the middle of a transaction, before COMMIT: the
// server rolled the transaction back, so Update runs fn again on another
// connection, as for a conflict, and the change is saved once. It used to
// fail ("write failed: … broken pipe" over the socket, the FATAL over TCP),
// a 503 for a database that was up.
func TestBackendEndedBeforeCommitReruns(t *testing.T) {
	dsns, admin := backendsToEnd(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			db := openDSN(t, dsn)
			first, second := name+"-first@example.com", name+"-second@example.com"
			attempts := 0
			err := db.Update(context.Background(), func(stx store.Tx) error {
				attempts++
				if err := stx.PutUser(&store.User{Email: first, Active: true}); err != nil {
					return err
				}
				if attempts == 1 {
					killOwnBackend(t, admin, stx)
				}
				return stx.PutUser(&store.User{Email: second, Active: true})
			})
			if err != nil {
				t.Fatalf("Update whose backend was ended before COMMIT = %v, want it run again and committed", err)
			}
			if attempts != 2 {
				t.Errorf("fn ran %d times, want 2", attempts)
			}
			if db.Reruns() != 0 {
				t.Errorf("Reruns = %d: it counts conflicts, not lost connections", db.Reruns())
			}
			view(t, db, func(tx store.Tx) error {
				for _, email := range []string{first, second} {
					if _, err := tx.UserByEmail(email); err != nil {
						t.Errorf("%s after the rerun: %v", email, err)
					}
				}
				return nil
			})
		})
	}
}

// A connection lost before COMMIT on every run: the reruns are bounded as
// for conflicts, and the error says what happened (and, over TCP, the
// server's reason), not that transactions conflicted.
func TestBackendEndedOnEveryRunFailsClearly(t *testing.T) {
	err := lostOnEveryRun(t, "Update", (*DB).Update, func(stx store.Tx) error {
		return stx.PutUser(&store.User{Email: "never@example.com", Active: true})
	}, "connection to the database was lost", "terminating connection due to administrator command")
	if strings.Contains(err.Error(), "conflicting") {
		t.Errorf("error %q blames conflicts", err)
	}
	t.Logf("error: %v", err)
}

// lostOnEveryRun runs fn with run (db.Update or db.View, named what) on a
// store reached over TCP, ending fn's backend in each of its runs, and
// checks that fn ran maxAttempts times and that the error it returns says
// each of wants.
func lostOnEveryRun(t *testing.T, what string, run func(*DB, context.Context, func(store.Tx) error) error,
	fn func(store.Tx) error, wants ...string) error {
	t.Helper()
	dsns, admin := backendsToEnd(t)
	db := openDSN(t, dsns["tcp"])
	runs := 0
	err := run(db, context.Background(), func(stx store.Tx) error {
		runs++
		killOwnBackend(t, admin, stx)
		return fn(stx)
	})
	if runs != maxAttempts {
		t.Errorf("fn ran %d times, want %d", runs, maxAttempts)
	}
	if err == nil {
		t.Fatal(what + " succeeded")
	}
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	return err
}

// connLost tells a connection that ended (which a rerun on another may
// survive) from a timeout (which a rerun would make the caller wait out
// again) and from an error the server answered on a live connection.
func TestConnLost(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"terminated (FATAL 57P01)", &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}, true},
		{"idle in transaction timeout, localized", &pgconn.PgError{Severity: "SCHWERWIEGEND", SeverityUnlocalized: "FATAL", Code: "25P03"}, true},
		{"connection exception", &pgconn.PgError{Severity: "ERROR", Code: "08006"}, true},
		{"broken pipe", fmt.Errorf("write failed: %w", &net.OpError{Op: "write", Net: "unix", Err: os.NewSyscallError("write", syscall.EPIPE)}), true},
		{"reset", fmt.Errorf("failed to receive message: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"unexpected EOF", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"EOF", fmt.Errorf("failed to receive message: %w", io.EOF), true},
		{"use of a closed connection", fmt.Errorf("write failed: %w", net.ErrClosed), true},
		{"conn closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), true},
		{"serialization failure", &pgconn.PgError{Severity: "ERROR", Code: "40001"}, false},
		{"statement timeout", &pgconn.PgError{Severity: "ERROR", Code: "57014"}, false},
		{"read-only", &pgconn.PgError{Severity: "ERROR", Code: "25006"}, false},
		{"bound's deadline", fmt.Errorf("timeout: %w", context.DeadlineExceeded), false},
		{"read deadline", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
		{"cancelled", context.Canceled, false},
		{"closed pool", errors.New("closed pool"), false},
	} {
		if got := connLost(c.err); got != c.want {
			t.Errorf("connLost(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

// A connection attempt that fails is no lost connection (waitRefused
// waits those out), although its error carries what would make one: the
// dial's *net.OpError (nobody listens on the port), or the server's FATAL
// (53300, the role's CONNECTION LIMIT reached, as at max_connections).
func TestConnLostNotOnRefusedConnection(t *testing.T) {
	// A port reserved below the ephemeral range: a port-0 port closed
	// again may be taken by another test's listener before the dial.
	port, release, err := testport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	closedPort := fmt.Sprintf("postgres://sso@127.0.0.1:%d/sso?sslmode=disable&connect_timeout=5", port)
	var oe *net.OpError
	_, err = pgx.Connect(t.Context(), closedPort)
	if !errors.As(err, &oe) || connLost(err) {
		t.Errorf("connect to a port nobody listens on: %v (%T), lost %v; want a dial error, not lost", err, err, connLost(err))
	}

	dsn, _ := limitedRole(t, 0)
	var pe *pgconn.PgError
	_, err = pgx.Connect(t.Context(), dsn)
	if !errors.As(err, &pe) || pe.Code != "53300" || pe.SeverityUnlocalized != "FATAL" || connLost(err) {
		t.Errorf("connect beyond the role's connection limit: %v, lost %v; want FATAL 53300, not lost", err, connLost(err))
	}
}

// A broadcast sent on the pool's connections just after the server ended
// them reaches the other instances: it used to fail on the first dead
// connection, and the others served the ended session until their cache
// entry expired.
func TestBroadcastPassesOverTerminatedConnections(t *testing.T) {
	dsns, admin := backendsToEnd(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			const conns = 4
			a, err := Open(context.Background(), Config{DSN: dsn, MaxConns: conns})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			lb := listen(t, openDSN(t, dsn))
			if inv := lb.next(t, 10*time.Second); !inv.All { // subscribed
				t.Fatalf("first call %+v, want All", inv)
			}
			terminate(t, admin, poolPIDs(t, a, conns)...) // not the listener's
			sent := store.Invalidation{Sessions: []string{"ended"}}
			if err := a.Broadcast(t.Context(), sent); err != nil {
				t.Fatalf("Broadcast after the pool's connections were ended: %v", err)
			}
			if got := lb.next(t, 5*time.Second); len(got.Sessions) != 1 || got.Sessions[0] != "ended" {
				t.Errorf("the other instance got %+v, want %+v", got, sent)
			}
		})
	}
}
