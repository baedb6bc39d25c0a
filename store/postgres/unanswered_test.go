package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestServerThatDoesNotAnswer freezes the server (a hung host, or a
// network that drops packets: connections are accepted and nothing comes
// back, so the server's statement_timeout cannot fire) and checks that
// reads, writes and broadcasts fail a moment after the statement timeout
// instead of waiting for the kernel, and that the same handle works again
// once the server answers.
func TestServerThatDoesNotAnswer(t *testing.T) {
	ctx := context.Background()
	pg, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{NoFsync: true})
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	t.Cleanup(func() {
		_ = pg.Thaw()
		_ = pg.Stop()
	})
	dsn, err := pg.CreateDatabase(ctx, "sso")
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	db, err := Open(ctx, Config{DSN: dsn, StatementTimeout: timeout, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := &store.User{Email: "ada@example.com", Active: true}
	update(t, db, func(tx store.Tx) error { return tx.PutUser(u) })

	if err := pg.Freeze(); err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		run  func() error
	}{
		{"view", func() error {
			return db.View(ctx, func(tx store.Tx) error { _, err := tx.User(u.ID); return err })
		}},
		{"update", func() error {
			return db.Update(ctx, func(tx store.Tx) error { u.FirstName = "Ada"; return tx.PutUser(u) })
		}},
		{"broadcast", func() error { return db.Broadcast(ctx, store.Invalidation{Users: []string{u.ID}}) }},
	}
	for _, op := range ops {
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- op.run() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			_ = pg.Thaw() // lets the operation, and Close, end
			t.Fatalf("%s still waits for the frozen server after 10s", op.name)
		}
		took := time.Since(start)
		t.Logf("%s on a frozen server: %v after %v", op.name, err, took.Round(time.Millisecond))
		if err == nil {
			t.Fatalf("%s succeeded on a frozen server", op.name)
		}
		if !strings.Contains(err.Error(), "no answer from the database within") {
			t.Errorf("%s: %v; want it to say the database did not answer", op.name, err)
		}
		// The bound is timeout + answerGrace; twice that for a busy machine.
		if took > 2*(timeout+answerGrace) {
			t.Errorf("%s took %v on a frozen server, want about %v", op.name, took, timeout+answerGrace)
		}
	}

	if err := pg.Thaw(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	view(t, db, func(tx store.Tx) error { _, err := tx.User(u.ID); return err })
	t.Logf("thawed: read in %v", time.Since(start).Round(time.Millisecond))

	// A statement whose rows are worked on as they come (tx.rows, whose
	// bound counts only the waits) is bound as well: frozen within a
	// transaction, before the statement.
	start = time.Now()
	done := make(chan error, 1)
	go func() {
		done <- db.View(ctx, func(tx store.Tx) error {
			if err := pg.Freeze(); err != nil {
				return err
			}
			return tx.ForEachUser("", func(*store.User) error { return nil })
		})
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_ = pg.Thaw()
		t.Fatal("a for-each still waits for the frozen server after 10s")
	}
	took := time.Since(start)
	t.Logf("for-each on a frozen server: %v after %v", err, took.Round(time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "no answer from the database within") {
		t.Errorf("for-each on a frozen server: %v; want it to say the database did not answer", err)
	}
	if took > 2*(timeout+answerGrace) {
		t.Errorf("for-each took %v on a frozen server, want about %v", took, timeout+answerGrace)
	}
	if err := pg.Thaw(); err != nil {
		t.Fatal(err)
	}
}
