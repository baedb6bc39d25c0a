package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestUpdateRerunsRetryableErrors: a transaction that meets a deadlock, a
// serialization failure, or a unique or foreign-key violation (which our
// writes meet only when a concurrent transaction committed what this one
// could not lock out) is run again and succeeds, as a concurrent first
// sign-in of the same user must; any other server error ends the Update
// after one run.
func TestUpdateRerunsRetryableErrors(t *testing.T) {
	db := openTest(t)
	for _, c := range []struct {
		code string
		runs int
	}{
		{"40001", 2}, // serialization_failure
		{"40P01", 2}, // deadlock_detected
		{"23505", 2}, // unique_violation
		{"23503", 2}, // foreign_key_violation
		{"23514", 1}, // check_violation: a rerun meets it again
		{"22001", 1}, // string_data_right_truncation
	} {
		t.Run(c.code, func(t *testing.T) {
			runs := 0
			err := db.Update(context.Background(), func(stx store.Tx) error {
				runs++
				if runs > 1 {
					return nil
				}
				_, err := stx.(*tx).exec(fmt.Sprintf(`DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '%s'; END $$`, c.code))
				return err
			})
			if runs != c.runs {
				t.Errorf("fn ran %d times, want %d", runs, c.runs)
			}
			var pe *pgconn.PgError
			switch {
			case c.runs > 1 && err != nil:
				t.Errorf("Update = %v, want the rerun's success", err)
			case c.runs == 1 && (!errors.As(err, &pe) || pe.Code != c.code):
				t.Errorf("Update = %v, want the server's %s", err, c.code)
			}
		})
	}
}

// TestAuditRefusesUnstorableText: an event whose type or user ID a text
// column cannot hold (a NUL byte, bytes that are not UTF-8) is refused by
// Audit itself, with ErrInvalidValue, so that the caller knows which event
// failed; the transaction, which queued nothing, still commits.
func TestAuditRefusesUnstorableText(t *testing.T) {
	db := openTest(t)
	for _, e := range []store.Event{
		{Type: "user\x00created", UserID: "u1"},
		{Type: store.EventUserCreated, UserID: "u\x001"},
		{Type: store.EventUserCreated, UserID: "u\xff1"},
	} {
		err := db.Update(context.Background(), func(stx store.Tx) error {
			if err := stx.Audit(e); !errors.Is(err, store.ErrInvalidValue) {
				t.Errorf("Audit(%q, %q) = %v, want ErrInvalidValue", e.Type, e.UserID, err)
			}
			return nil
		})
		if err != nil {
			t.Errorf("Update after a refused Audit(%q, %q) = %v, want its commit", e.Type, e.UserID, err)
		}
	}
	if err := db.View(context.Background(), func(stx store.Tx) error {
		ev, err := stx.AuditEvents(store.AuditQuery{})
		if err == nil && len(ev) != 0 {
			t.Errorf("refused events were stored: %+v", ev)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSecretRefusesUnstorableName: a secret name PostgreSQL cannot store
// (NUL, not UTF-8) is refused as ErrInvalidValue before it reaches the
// server, whose error would abort the caller's whole transaction.
func TestSecretRefusesUnstorableName(t *testing.T) {
	db := openTest(t)
	for _, name := range []string{"key\x00a", "key\xffa"} {
		err := db.Update(context.Background(), func(stx store.Tx) error {
			if _, err := stx.Secret(name, 16); !errors.Is(err, store.ErrInvalidValue) {
				t.Errorf("Secret(%q) = %v, want ErrInvalidValue", name, err)
			}
			if _, err := stx.LoadOrStoreSecret(name, nil); !errors.Is(err, store.ErrInvalidValue) {
				t.Errorf("LoadOrStoreSecret(%q) = %v, want ErrInvalidValue", name, err)
			}
			return stx.PutUser(&store.User{Email: fmt.Sprintf("u%x@x.io", name[len(name)-2]), Active: true})
		})
		if err != nil {
			t.Errorf("Update after a refused Secret(%q) = %v, want its commit", name, err)
		}
	}
}
