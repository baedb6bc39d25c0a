package bolt

import (
	"slices"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func TestSessions(t *testing.T) {
	db := openTest(t)
	alice := &store.User{Email: "alice@x.io"}
	bob := &store.User{Email: "bob@x.io"}
	putUser(t, db, alice)
	putUser(t, db, bob)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s := &store.Session{
		Hash: "h-alice-1", UserID: alice.ID, IdP: "okta", Created: now, Expires: now.Add(8 * time.Hour), LastSeen: now,
		Logout: store.LogoutInfo{SessionID: "idx"},
	}
	update(t, db, func(tx store.Tx) error {
		for _, x := range []*store.Session{
			s,
			{Hash: "h-alice-2", UserID: alice.ID},
			{Hash: "h-bob-1", UserID: bob.ID},
		} {
			if err := tx.PutSession(x); err != nil {
				return err
			}
		}
		if err := tx.PutSession(&store.Session{Hash: "h-ghost", UserID: "ghost"}); !isNotFound(err) {
			t.Errorf("session for a missing user: %v, want ErrNotFound", err)
		}
		return nil
	})
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		got, err := tx.Session("h-alice-1")
		if err != nil {
			return err
		}
		sameJSON(t, "session", s, got)
		if _, err := tx.Session("nope"); !isNotFound(err) {
			t.Errorf("missing session: %v", err)
		}
		return nil
	})

	// Re-putting a hash under another user moves the index entry.
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h-alice-2", UserID: bob.ID})
	})
	checkIndexes(t, db)

	update(t, db, func(tx store.Tx) error {
		got, err := tx.DeleteUserSessions(bob.ID)
		if err != nil {
			return err
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"h-alice-2", "h-bob-1"}) {
			t.Errorf("DeleteUserSessions(bob) = %q", got)
		}
		if got, err := tx.DeleteUserSessions(bob.ID); err != nil || len(got) != 0 {
			t.Errorf("second DeleteUserSessions = %q, %v", got, err)
		}
		if err := tx.DeleteSession("h-alice-1"); err != nil {
			return err
		}
		if err := tx.DeleteSession("h-alice-1"); !isNotFound(err) {
			t.Errorf("deleting twice: %v", err)
		}
		return nil
	})
	checkIndexes(t, db)

	// Deleting a user takes its sessions with it.
	update(t, db, func(tx store.Tx) error { return tx.PutSession(&store.Session{Hash: "h-alice-3", UserID: alice.ID}) })
	update(t, db, func(tx store.Tx) error { return tx.DeleteUser(alice.ID) })
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		if _, err := tx.Session("h-alice-3"); !isNotFound(err) {
			t.Errorf("session survived its user: %v", err)
		}
		return nil
	})
}

func TestDeleteExpiredSessions(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	sess := []store.Session{
		{Hash: "fresh", Created: now.Add(-time.Hour), Expires: now.Add(time.Hour), LastSeen: now.Add(-time.Minute)},
		{Hash: "absolute", Created: now.Add(-9 * time.Hour), Expires: now.Add(-time.Second), LastSeen: now.Add(-time.Minute)},
		{Hash: "idle", Created: now.Add(-3 * time.Hour), Expires: now.Add(5 * time.Hour), LastSeen: now.Add(-2 * time.Hour)},
		{Hash: "idle-edge", Created: now.Add(-3 * time.Hour), Expires: now.Add(5 * time.Hour), LastSeen: now.Add(-time.Hour)},
		{Hash: "never-seen-new", Created: now.Add(-time.Minute), Expires: now.Add(time.Hour)},
		{Hash: "never-seen-old", Created: now.Add(-2 * time.Hour), Expires: now.Add(time.Hour)},
	}
	tests := []struct {
		name string
		idle time.Duration
		want []string
	}{
		{"absolute only", 0, []string{"absolute"}},
		{"with idle timeout", time.Hour, []string{"absolute", "idle", "never-seen-old"}},
		{"short idle timeout", 30 * time.Second, []string{"absolute", "fresh", "idle", "idle-edge", "never-seen-new", "never-seen-old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			u := &store.User{}
			putUser(t, db, u)
			update(t, db, func(tx store.Tx) error {
				for _, s := range sess {
					s.UserID = u.ID
					if err := tx.PutSession(&s); err != nil {
						return err
					}
				}
				return nil
			})
			update(t, db, func(tx store.Tx) error {
				got, err := tx.DeleteExpiredSessions(now, tt.idle, 100)
				if err != nil {
					return err
				}
				slices.Sort(got)
				if !slices.Equal(got, tt.want) {
					t.Errorf("deleted %q, want %q", got, tt.want)
				}
				for _, h := range tt.want {
					if _, err := tx.Session(h); !isNotFound(err) {
						t.Errorf("%s still there", h)
					}
				}
				return nil
			})
			checkIndexes(t, db)
		})
	}
}
