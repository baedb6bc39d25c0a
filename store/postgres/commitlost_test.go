package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestCommitLostConnection: the connection is lost once COMMIT is on its
// way, and the server commits. Update must not report it as a failure that
// wrote nothing (a sign-in page "Nothing was changed" while the user,
// session and audit event exist): it says the outcome is unknown.
func TestCommitLostConnection(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	direct := openDSN(t, dsn)
	cut := pgtest.NewCommitCutter(t, dsn, nil)
	db := openDSN(t, cut.DSN)
	u := &store.User{Email: "ada@example.com", Active: true, IdP: "okta", ExternalID: "ada", Source: store.SourceJIT}
	err := db.Update(context.Background(), func(tx store.Tx) error {
		cut.Arm()
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: u.ID})
	})
	if !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Errorf("Update with the connection lost during COMMIT = %v; want store.ErrOutcomeUnknown", err)
	}
	if err == nil || strings.Contains(err.Error(), "password") {
		t.Fatalf("Update = %v; want the lost connection reported", err)
	}
	// The server committed: the change is there for the next reader.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found error
		view(t, direct, func(tx store.Tx) error { _, found = tx.User(u.ID); return nil })
		if found == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user the lost COMMIT carried is not in the database: %v", found)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The handle goes on with a new connection.
	putUser(t, db, &store.User{Email: "bob@example.com", Active: true})
}

// TestCommitServerError: an error the server answers COMMIT with (here a
// deferred exclusion constraint, checked at COMMIT) is an answer: the
// transaction did not commit, and Update says so, not that the outcome is
// unknown.
func TestCommitServerError(t *testing.T) {
	db := openTest(t)
	err := db.Update(t.Context(), func(stx store.Tx) error {
		for _, sql := range []string{
			"CREATE TEMP TABLE deferred (v int, EXCLUDE USING btree (v WITH =) DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP",
			"INSERT INTO deferred VALUES (1), (1)",
		} {
			if _, err := stx.(*tx).q.Exec(t.Context(), sql); err != nil {
				return err
			}
		}
		return nil
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23P01" || errors.Is(err, store.ErrOutcomeUnknown) {
		t.Errorf("Update whose COMMIT the server refused = %v; want its error (23P01), the outcome known", err)
	}
}

// commitUnknown: which errors of a COMMIT leave its outcome unknown.
func TestCommitUnknown(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"the server's error", &pgconn.PgError{Severity: "ERROR", Code: "23P01"}, false},
		{"the server's FATAL", &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}, false},
		{"answered with ROLLBACK", pgx.ErrTxCommitRollback, false},
		{"transaction already closed", pgx.ErrTxClosed, false},
		{"nothing sent", safeToRetry{errors.New("context ended before the write")}, false},
		{"conn closed after COMMIT went out", fmt.Errorf("commit: %w", pgconn.ErrConnClosed), true},
		{"no answer in time", fmt.Errorf("timeout: %w", context.DeadlineExceeded), true},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
	} {
		if got := commitUnknown(c.err); got != c.want {
			t.Errorf("commitUnknown(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

// safeToRetry is an error pgconn marks as raised before anything was sent.
type safeToRetry struct{ error }

func (safeToRetry) SafeToRetry() bool { return true }
