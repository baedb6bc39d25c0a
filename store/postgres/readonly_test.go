package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// setDatabaseDefault sets a default for new sessions of the store's
// database (ALTER DATABASE … SET), as a DBA does, until the test ends.
func setDatabaseDefault(t *testing.T, db *DB, setting, value string) {
	t.Helper()
	var name string
	if err := db.pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	admin := adminConn(t)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(t.Context(), "ALTER DATABASE "+ident+" SET "+setting+" = "+value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "ALTER DATABASE "+ident+" RESET "+setting) })
}

// A DBA fences the database (default_transaction_read_only on, as for an
// old primary): a running instance's writes stop, with an error that says
// why, once its connections are new. They used to go on: every Update
// began READ WRITE, overriding the default.
func TestDefaultReadOnlyFencesWrites(t *testing.T) {
	db := openTest(t)
	putUser(t, db, &store.User{Email: "before@example.com", Active: true})
	setDatabaseDefault(t, db, "default_transaction_read_only", "on")
	db.pool.Reset() // new sessions get the database's defaults
	err := db.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutUser(&store.User{Email: "fenced@example.com", Active: true})
	})
	if !errors.Is(err, ErrReadOnlyDatabase) {
		t.Fatalf("Update on a database set default_transaction_read_only = %v, want ErrReadOnlyDatabase", err)
	}
	if !strings.Contains(err.Error(), "target_session_attrs=read-write") {
		t.Errorf("error %q does not say what to do", err)
	}
	view(t, db, func(tx store.Tx) error {
		if _, err := tx.UserByEmail("before@example.com"); err != nil {
			t.Errorf("read on the fenced database: %v", err)
		}
		if _, err := tx.UserByEmail("fenced@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the fenced write: %v, want it not written", err)
		}
		return nil
	})
}

// The access mode is left to the server's default; the isolation level,
// which the store's locking relies on (see the package doc), is not.
func TestUpdateIsolationIgnoresDefault(t *testing.T) {
	db := openTest(t)
	setDatabaseDefault(t, db, "default_transaction_isolation", "'serializable'")
	db.pool.Reset()
	update(t, db, func(stx store.Tx) error {
		var level string
		if err := stx.(*tx).q.QueryRow(t.Context(), "SHOW transaction_isolation").Scan(&level); err != nil {
			return err
		}
		if level != "read committed" {
			t.Errorf("Update runs %s, want read committed", level)
		}
		return nil
	})
}

// Open refuses a database set default_transaction_read_only, which it
// used to open (its schema check only reads) for an instance that then
// failed every write; AllowReadOnly opens it for reading.
func TestOpenRefusesDefaultReadOnlyDatabase(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	setDatabaseDefault(t, openDSN(t, dsn), "default_transaction_read_only", "on")
	db, err := Open(context.Background(), Config{DSN: dsn})
	if err == nil {
		db.Close()
		t.Fatal("Open on a database set default_transaction_read_only succeeded")
	}
	if !errors.Is(err, ErrReadOnlyDatabase) || !strings.Contains(err.Error(), "default_transaction_read_only is on") {
		t.Errorf("Open = %v, want ErrReadOnlyDatabase saying default_transaction_read_only", err)
	}

	db, err = Open(context.Background(), Config{DSN: dsn, AllowReadOnly: true})
	if err != nil {
		t.Fatalf("Open with AllowReadOnly: %v", err)
	}
	defer db.Close()
	view(t, db, func(tx store.Tx) error { return tx.ForEachUser("", func(*store.User) error { return nil }) })
	err = db.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutUser(&store.User{Email: "x@example.com", Active: true})
	})
	if !errors.Is(err, ErrReadOnlyDatabase) {
		t.Errorf("Update with AllowReadOnly = %v, want ErrReadOnlyDatabase", err)
	}

	// A schema behind this build's cannot be brought up to date there.
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, sql := range []string{"SET default_transaction_read_only = off", "UPDATE sso_schema SET version = 1"} {
		if _, err := c.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	db2, err := Open(context.Background(), Config{DSN: dsn, AllowReadOnly: true})
	if err == nil {
		db2.Close()
		t.Fatal("Open with AllowReadOnly of a read-only database that needs a migration succeeded")
	}
	if !errors.Is(err, ErrReadOnlyDatabase) || !strings.Contains(err.Error(), "schema version 1") {
		t.Errorf("Open with AllowReadOnly of a read-only database that needs a migration = %v", err)
	}
}

// A DSN that points at a hot standby (stale DNS after a failover, a
// replica's address): Open refuses it, saying so, where it used to open it
// and every write then failed. The standby is a private cluster restarted
// in standby mode (standby.signal, hot_standby on by default): a server in
// recovery with no primary to follow, as a standby is to its clients, and
// no pg_basebackup to pay for.
func TestOpenRefusesHotStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server of its own")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pg, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{NoFsync: true})
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	dsn, err := pg.CreateDatabase(ctx, "sso")
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	putUser(t, db, &store.User{Email: "p@example.com", Active: true})
	db.Close()
	toStandby(ctx, t, pg)

	sdb, err := Open(ctx, Config{DSN: dsn})
	if err == nil {
		sdb.Close()
		t.Fatal("Open on a hot standby succeeded")
	}
	// ErrReadOnlyDatabase's own text says "hot standby" too: the standby
	// is named by what Open found, and the other cause is not given.
	if !errors.Is(err, ErrReadOnlyDatabase) || !strings.Contains(err.Error(), "pg_is_in_recovery() is true") ||
		strings.Contains(err.Error(), "default_transaction_read_only is on") {
		t.Errorf("Open on a hot standby = %v, want ErrReadOnlyDatabase saying it is a standby", err)
	}
	t.Logf("Open on the standby: %v", err)

	// Opened for reading all the same, its reads work and its writes say
	// why they fail.
	sdb, err = Open(ctx, Config{DSN: dsn, AllowReadOnly: true})
	if err != nil {
		t.Fatalf("Open on the standby with AllowReadOnly: %v", err)
	}
	defer sdb.Close()
	view(t, sdb, func(tx store.Tx) error {
		_, err := tx.UserByEmail("p@example.com")
		return err
	})
	err = sdb.Update(ctx, func(tx store.Tx) error { return tx.PutUser(&store.User{Email: "s@example.com", Active: true}) })
	if !errors.Is(err, ErrReadOnlyDatabase) {
		t.Errorf("Update on the standby = %v, want ErrReadOnlyDatabase", err)
	}

	// The standby's other refusal, of a transaction begun READ WRITE, is
	// SQLSTATE 0A000 (feature_not_supported) about recovery: taken as a
	// read-only database too, on the server's own words.
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, "BEGIN READ WRITE")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" || !readOnlyDatabase(err) {
		t.Errorf("BEGIN READ WRITE on the standby: %v; want SQLSTATE 0A000, taken as a read-only database", err)
	}
}

// readOnlyDatabase takes the server's refusals of a write because it takes
// none, and no other error of the same SQLSTATE class.
func TestReadOnlyDatabase(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}, true},
		{fmt.Errorf("insert: %w", &pgconn.PgError{Code: "25006"}), true},
		{&pgconn.PgError{Code: "0A000", Message: "cannot set transaction read-write mode during recovery"}, true},
		{&pgconn.PgError{Code: "0A000", Message: "FOR UPDATE is not allowed with GROUP BY clause"}, false},
		{&pgconn.PgError{Code: "25P02", Message: "current transaction is aborted"}, false},
		{errors.New("cannot set transaction read-write mode during recovery"), false},
	} {
		if got := readOnlyDatabase(c.err); got != c.want {
			t.Errorf("readOnlyDatabase(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// toStandby stops the cluster cleanly and starts it again as a hot
// standby, and checks that it is one.
func toStandby(ctx context.Context, t *testing.T, pg *pgtest.Cluster) {
	t.Helper()
	bin, err := pgtest.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(pg.Dir, "data")
	// As pgtest runs the cluster's binaries: as its OS user when root.
	args := []string{filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", pgtest.OSUser, "--"}, args...)
	}
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(data, "standby.signal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pg.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, pg.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var inRecovery bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("pg_is_in_recovery() = %v, %v after the restart as a standby", inRecovery, err)
	}
}
