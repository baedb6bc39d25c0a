package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// A View whose backend is ended while it runs (a DBA's or a pooler's
// pg_terminate_backend, a restart or failover in the middle of a request)
// runs again on another connection and answers: a read changed nothing.
// It used to fail ("write failed: … broken pipe" over the socket, the
// server's FATAL 57P01 over TCP), and a session lookup answered 503 with
// the database up. Dead idle connections were already passed over before
// BEGIN (TestTerminatedIdleConnectionsFailNoRequest); this is the
// connection lost after it.
func TestViewWhoseBackendEndedReruns(t *testing.T) {
	dsns, admin := backendsToEnd(t)
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			db := openDSN(t, dsn)
			u := &store.User{Email: name + "@example.com", Active: true}
			putUser(t, db, u)
			runs := 0
			var got *store.User
			err := db.View(context.Background(), func(stx store.Tx) error {
				runs++
				got = nil // afresh on each run, as fn must start
				// Two reads, as a session lookup makes (the session, then
				// its user); the backend ends between them.
				byID, err := stx.User(u.ID)
				if err != nil {
					return err
				}
				if runs == 1 {
					killOwnBackend(t, admin, stx)
				}
				if got, err = stx.UserByEmail(u.Email); err != nil {
					return err
				}
				if got.ID != byID.ID {
					t.Errorf("read %s, then %s", byID.ID, got.ID)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("View whose backend was ended = %v, want it run again and answered", err)
			}
			if runs != 2 {
				t.Errorf("fn ran %d times, want 2", runs)
			}
			if got == nil || got.ID != u.ID {
				t.Errorf("View read %+v, want the user %s", got, u.ID)
			}
			if db.Reruns() != 0 {
				t.Errorf("Reruns = %d: it counts conflicts, not lost connections", db.Reruns())
			}
		})
	}
}

// A View whose connection is lost on every run stops after maxAttempts
// runs, as Update does, and says what happened and the server's reason.
func TestViewLostOnEveryRunFailsClearly(t *testing.T) {
	err := lostOnEveryRun(t, "View", (*DB).View, func(stx store.Tx) error {
		_, err := stx.UserByEmail("never@example.com")
		return err
	}, "postgres: view: the connection to the database was lost in each of 12 attempts", "terminating connection due to administrator command")
	for _, not := range []string{"COMMIT", "written", "conflicting"} {
		if strings.Contains(err.Error(), not) {
			t.Errorf("error %q says %q, of a read", err, not)
		}
	}
}

// A statement error the server sent in a View is its answer: fn runs once.
// 40001 is the case in point: Update reruns it (a serialization failure),
// but in a View it is a hot standby's recovery conflict, which a View at
// once again would meet again; and a View takes no locks to conflict on.
func TestViewServerErrorNotRerun(t *testing.T) {
	db := openTest(t)
	raise := func(stx store.Tx) error {
		_, err := stx.(*tx).exec(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
		return err
	}
	runs := 0
	err := db.View(context.Background(), func(stx store.Tx) error {
		runs++
		return raise(stx)
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "40001" {
		t.Errorf("View = %v, want the server's 40001", err)
	}
	if runs != 1 {
		t.Errorf("a View whose statement the server refused ran %d times, want 1", runs)
	}
	// The same error reruns an Update: what the View's single run shows
	// is its own rule, not an error no one reruns.
	runs = 0
	_ = db.Update(context.Background(), func(stx store.Tx) error {
		runs++
		return raise(stx)
	})
	if runs != maxAttempts {
		t.Errorf("Update met 40001 on each run and ran %d times, want %d", runs, maxAttempts)
	}
}

// An error of the connection_exception class (SQLSTATE 08) that the
// server sends on a connection that stays open (dblink or postgres_fdw
// failing to reach another server, a function that raises it) is the
// statement's answer, not a lost connection of this store: neither a View
// nor an Update runs fn again for it (run checks that the connection
// closed, not only the error's class).
func TestConnectionClassErrorOnOpenConnectionNotRerun(t *testing.T) {
	db := openTest(t)
	for _, c := range []struct {
		name string
		run  func(context.Context, func(store.Tx) error) error
	}{
		{"view", db.View},
		{"update", db.Update},
	} {
		t.Run(c.name, func(t *testing.T) {
			runs := 0
			err := c.run(context.Background(), func(stx store.Tx) error {
				runs++
				_, err := stx.(*tx).exec(`DO $$ BEGIN RAISE EXCEPTION 'could not connect to the remote server' USING ERRCODE = '08001'; END $$`)
				return err
			})
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "08001" {
				t.Errorf("%s = %v, want the server's 08001", c.name, err)
			}
			if runs != 1 {
				t.Errorf("a %s whose statement the server answered with 08001, on a connection still open, ran %d times, want 1", c.name, runs)
			}
		})
	}
}

// A View whose connection was lost after its caller gave up is not run
// again: the context's end is the caller's answer.
func TestViewLostAfterCancelNotRerun(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	db := openDSN(t, dsn)
	admin := adminConn(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	err := db.View(ctx, func(stx store.Tx) error {
		runs++
		killOwnBackend(t, admin, stx)
		_, err := stx.UserByEmail("never@example.com")
		if !connLost(err) {
			t.Errorf("read on the ended backend = %v, want a lost connection", err)
		}
		cancel()
		return err
	})
	if runs != 1 {
		t.Errorf("fn ran %d times after its context ended, want 1", runs)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("View = %v, want context.Canceled", err)
	}
}
