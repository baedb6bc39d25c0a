package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestUsersOfIdPLocksNoRow: in an Update, User locks the row it reads and
// UsersOfIdP locks none, so that a SCIM group change can check the members
// it adds without taking their locks before PutGroup takes every touched
// member's, in ID order (syncMembers). Another connection's FOR UPDATE
// NOWAIT on the row, while the Update is open, tells which.
func TestUsersOfIdPLocksNoRow(t *testing.T) {
	db := openTest(t)
	putUser(t, db, &store.User{ID: "u1", IdP: "entra"})
	for _, tt := range []struct {
		name   string
		read   func(store.Tx) error
		locked bool
	}{
		{"User", func(tx store.Tx) error { _, err := tx.User("u1"); return err }, true},
		{"UsersOfIdP", func(tx store.Tx) error {
			got, err := tx.UsersOfIdP("entra", []string{"u1"})
			if err == nil && len(got) != 1 {
				t.Errorf("UsersOfIdP = %q, want [u1]", got)
			}
			return err
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			update(t, db, func(tx store.Tx) error {
				if err := tt.read(tx); err != nil {
					return err
				}
				_, err := db.pool.Exec(context.Background(), "SELECT 1 FROM sso_users WHERE id = 'u1' FOR UPDATE NOWAIT")
				var pgErr *pgconn.PgError
				switch locked := errors.As(err, &pgErr) && pgErr.Code == "55P03"; {
				case err != nil && !locked:
					t.Errorf("the other connection's lock: %v", err)
				case locked != tt.locked:
					t.Errorf("row locked by the Update: %v, want %v", locked, tt.locked)
				}
				return nil
			})
		})
	}
}
