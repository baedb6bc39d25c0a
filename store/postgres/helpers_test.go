package postgres

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openTest opens a store on a fresh database and closes it when the test
// ends.
func openTest(t testing.TB) *DB {
	t.Helper()
	return openDSN(t, pgtest.NewDatabase(t))
}

// openDSN opens another handle on a database: a second instance.
func openDSN(t testing.TB, dsn string) *DB {
	t.Helper()
	return openConfig(t, Config{DSN: dsn})
}

// twoInstances opens two instances on a fresh database: a, and b, whose
// statements may wait a minute. The lock-order tests make b's transaction
// wait for a's locks, which takes seconds under the race detector on a
// busy machine: a timeout that does not cut the wait short, so that only
// a deadlock can fail it.
func twoInstances(t testing.TB) (a, b *DB) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	return openDSN(t, dsn), openConfig(t, Config{DSN: dsn, StatementTimeout: time.Minute})
}

// openConfig opens an instance with cfg, closed when the test ends.
func openConfig(t testing.TB, cfg Config) *DB {
	t.Helper()
	db, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func update(t testing.TB, db store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t testing.TB, db store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := db.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func putUser(t testing.TB, db store.Store, u *store.User) {
	t.Helper()
	update(t, db, func(tx store.Tx) error { return tx.PutUser(u) })
}

// userGroups returns the groups the store holds for the user id.
func userGroups(t testing.TB, db store.Store, id string) []string {
	t.Helper()
	var out []string
	view(t, db, func(tx store.Tx) error {
		u, err := tx.User(id)
		if err != nil {
			return err
		}
		out = u.Groups
		return nil
	})
	return out
}

// twoInstancesWithUsers opens two instances on one new database that holds
// n users, whose IDs it returns.
func twoInstancesWithUsers(t testing.TB, n int) (a, b *DB, ids []string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	a, b = openDSN(t, dsn), openDSN(t, dsn)
	for i := range n {
		u := &store.User{Email: "m" + strconv.Itoa(i) + "@x.io"}
		putUser(t, a, u)
		ids = append(ids, u.ID)
	}
	return a, b, ids
}

// databaseAt makes a database as a build of schema version made it: the
// migrations up to version, and the version recorded. It returns its DSN
// and a connection to it, closed when the test ends, for the test to add
// rows as that build wrote them before Open migrates it.
func databaseAt(t *testing.T, version int) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, m := range all[:version] {
		if _, err := conn.Exec(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	if _, err := conn.Exec(ctx, "UPDATE sso_schema SET version = $1", version); err != nil {
		t.Fatal(err)
	}
	return dsn, conn
}
