package bolt

import (
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func TestUserSessions(t *testing.T) {
	db := openTest(t)
	alice := &store.User{Email: "alice@x.io"}
	bob := &store.User{Email: "bob@x.io"}
	putUser(t, db, alice)
	putUser(t, db, bob)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	update(t, db, func(tx store.Tx) error {
		for _, s := range []*store.Session{
			{Hash: "h-a-2", UserID: alice.ID, IdP: "okta", Created: now, Expires: now.Add(time.Hour)},
			{Hash: "h-a-1", UserID: alice.ID, IdP: "entra", Created: now},
			{Hash: "h-b-1", UserID: bob.ID},
		} {
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx store.Tx) error {
		got, err := tx.UserSessions(alice.ID)
		if err != nil {
			return err
		}
		if len(got) != 2 || got[0].Hash != "h-a-1" || got[1].Hash != "h-a-2" || got[1].IdP != "okta" {
			t.Errorf("alice's sessions: %+v", got)
		}
		if got, err := tx.UserSessions("nobody"); err != nil || len(got) != 0 {
			t.Errorf("sessions of a missing user: %v, %v", got, err)
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		_, err := tx.DeleteUserSessions(alice.ID)
		return err
	})
	view(t, db, func(tx store.Tx) error {
		if got, _ := tx.UserSessions(alice.ID); len(got) != 0 {
			t.Errorf("after delete: %+v", got)
		}
		if got, _ := tx.UserSessions(bob.ID); len(got) != 1 {
			t.Errorf("bob's sessions: %+v", got)
		}
		return nil
	})
}
