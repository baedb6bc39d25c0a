package pgtest

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCommitCutterFollowsTheTransaction: the cutter cuts the COMMIT of the
// transaction that sent after, also when a rerun on the same connection
// sends only the cached statement's name, and never the COMMIT of another
// transaction next on the connection after a rolled-back one.
func TestCommitCutterFollowsTheTransaction(t *testing.T) {
	ctx := t.Context()
	dsn := NewDatabase(t)
	direct, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	if _, err := direct.Exec(ctx, "CREATE TABLE marks (x int)"); err != nil {
		t.Fatal(err)
	}
	cut := NewCommitCutter(t, dsn, []byte("INSERT INTO marks"))
	cut.Arm()
	conn, err := pgx.Connect(ctx, cut.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	inTx := func(sql string, arg int) (pgx.Tx, error) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, sql, arg)
		return tx, err
	}

	// A first run that rolls back (a serialization failure, say).
	tx, err := inTx("INSERT INTO marks VALUES ($1)", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Another transaction on the connection is not the one to cut.
	tx, err = inTx("UPDATE marks SET x = $1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil || cut.Cuts() != 0 {
		t.Fatalf("an unrelated COMMIT after a rollback: %v, %d cut; want it through", err, cut.Cuts())
	}
	// The rerun sends the cached statement's name only, and is cut.
	tx, err = inTx("INSERT INTO marks VALUES ($1)", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err == nil || cut.Cuts() != 1 {
		t.Fatalf("the rerun's COMMIT: %v, %d cut; want it cut", err, cut.Cuts())
	}
	// The server runs the COMMIT whose answer was lost.
	var n int
	for deadline := time.Now().Add(5 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := direct.QueryRow(ctx, "SELECT count(*) FROM marks WHERE x = 2").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Errorf("rows the cut COMMIT wrote: %d, want 1", n)
	}
}
