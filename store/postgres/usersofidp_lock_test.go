package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestUsersOfIdPLocksNoRow: in an Update, User locks the row it reads and
// UsersOfIdP locks none, so that a SCIM group change can check the members
// it adds without taking their locks before PutGroup takes every touched
// member's, in ID order (syncMembers). Likewise UserHolding, with which a
// sign-in or a SCIM write checks who holds a value without locking a
// second user after its own; LockUsers locks. Another connection's FOR
// UPDATE NOWAIT on the row, while the Update is open, tells which.
func TestUsersOfIdPLocksNoRow(t *testing.T) {
	db := openTest(t)
	putUser(t, db, &store.User{ID: "u1", IdP: "entra", Email: "u1@x.io", UserName: "u1", ExternalID: "e1",
		Links: []store.Link{{IdP: "entra", Subject: "s1"}}})
	holding := func(key store.UserKey, idp, value string) func(store.Tx) error {
		return func(tx store.Tx) error {
			u, err := tx.UserHolding(key, idp, value)
			if err == nil && u.ID != "u1" {
				t.Errorf("UserHolding(%d, %q) = %q, want u1", key, value, u.ID)
			}
			return err
		}
	}
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
		{"UserHolding link", holding(store.KeyLink, "entra", "s1"), false},
		{"UserHolding email", holding(store.KeyEmail, "", "U1@x.io"), false},
		{"UserHolding userName", holding(store.KeyUserName, "", "u1"), false},
		{"UserHolding externalId", holding(store.KeyExternalID, "entra", "e1"), false},
		{"UserByEmail", func(tx store.Tx) error { _, err := tx.UserByEmail("u1@x.io"); return err }, true},
		{"LockUsers", func(tx store.Tx) error { return tx.LockUsers([]string{"u1", "u0"}) }, true},
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

// TestMemberDeletedMeanwhileRerunsUnreturned: a member UsersOfIdP found
// and another transaction deleted before PutGroup reruns the Update even
// when fn goes on without returning PutGroup's error, as after any of
// this package's failed statements (tx.fail): the rerun finds the user
// gone and writes the group without them, rather than committing the run
// whose group write was refused.
func TestMemberDeletedMeanwhileRerunsUnreturned(t *testing.T) {
	db := openTest(t)
	putUser(t, db, &store.User{ID: "stays", IdP: "entra", Email: "stays@x.io"})
	putUser(t, db, &store.User{ID: "gone", IdP: "entra", Email: "gone@x.io"})
	var firstErr error
	runs := 0
	update(t, db, func(tx store.Tx) error {
		runs++
		found, err := tx.UsersOfIdP("entra", []string{"gone", "stays"})
		if err != nil {
			return err
		}
		if runs == 1 {
			update(t, db, func(tx store.Tx) error { return tx.DeleteUser("gone") })
		}
		err = tx.PutGroup(&store.Group{ID: "g", IdP: "entra", DisplayName: "Staff", Members: found})
		if runs == 1 {
			firstErr = err
		}
		return nil // fn goes on: the store must still not commit this run
	})
	if !errors.Is(firstErr, errMemberDeletedMeanwhile) {
		t.Errorf("first PutGroup: %v, want errMemberDeletedMeanwhile", firstErr)
	}
	if runs != 2 {
		t.Errorf("fn ran %d times, want 2: the run whose PutGroup found a member deleted meanwhile is rerun", runs)
	}
	view(t, db, func(tx store.Tx) error {
		g, err := tx.Group("g")
		if err != nil {
			return fmt.Errorf("group written by the rerun: %w", err)
		}
		if !slices.Equal(g.Members, []string{"stays"}) {
			t.Errorf("members %v, want [stays]", g.Members)
		}
		return nil
	})
}
