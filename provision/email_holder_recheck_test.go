package provision_test

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// changeAtLockTx runs change in the transaction just before the second
// LockUsers, lockHolder's (knownUser's is the first): what another
// transaction could commit between forceProfile's unlocked read of the
// holder and its lock on them, had knownUser not locked them already
// (it found no holder to take then, say).
type changeAtLockTx struct {
	store.Tx
	change func(store.Tx) error
	calls  int
}

func (c *changeAtLockTx) LockUsers(ids []string) error {
	if c.calls++; c.calls == 2 {
		if err := c.change(c.Tx); err != nil {
			return err
		}
	}
	return c.Tx.LockUsers(ids)
}

// TestForceSignInRechecksHolderOnceLocked: a force sign-in reads the
// holder of its new email without a lock (UserHolding), locks them with
// its own user in ID order (LockUsers), and reads them again before it
// takes the address (lockHolder): what changed in between decides, and is
// never written over with what the first read found.
func TestForceSignInRechecksHolderOnceLocked(t *testing.T) {
	rules := provision.Rules{JIT: true, Update: provision.UpdateForce}
	for _, tt := range []struct {
		name   string
		change func(h *store.User) // the holder's change before the lock
		// holderEmail and email: the holder's and the signing-in user's
		// emails after the sign-in; released: Result.ReleasedFrom.
		holderEmail, email, released string
	}{
		{"nothing changed: taken", func(*store.User) {}, "", "a@x.io", "a"},
		{"the holder moved to another address: free", func(h *store.User) { h.Email = "a2@x.io" }, "a2@x.io", "a@x.io", ""},
		{"the holder now signs in at another IdP too: kept", func(h *store.User) {
			h.Links = append(h.Links, store.Link{IdP: "google", Subject: "g-a"})
		}, "a@x.io", "b@x.io", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			for _, u := range []*store.User{
				{ID: "a", IdP: "okta", Email: "a@x.io", EmailVerified: true, Active: true, Source: store.SourceJIT, Links: []store.Link{{IdP: "okta", Subject: "sub-a"}}},
				{ID: "b", IdP: "okta", Email: "b@x.io", EmailVerified: true, Active: true, Source: store.SourceJIT, Links: []store.Link{{IdP: "okta", Subject: "sub-b"}}},
			} {
				if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
					t.Fatal(err)
				}
			}
			var res *provision.Result
			err := e.db.Update(context.Background(), func(btx store.Tx) error {
				tx := &changeAtLockTx{Tx: btx, change: func(tx store.Tx) error {
					h, err := tx.User("a")
					if err != nil {
						return err
					}
					tt.change(h)
					return tx.PutUser(h)
				}}
				var err error
				res, err = provision.Apply(tx, "okta", rules, mapping.Profile{UniqueUserID: "sub-b", Email: "a@x.io"}, true, t0)
				if err == nil && tx.calls != 2 {
					t.Errorf("LockUsers called %d times, want 2 (knownUser, lockHolder)", tx.calls)
				}
				return err
			})
			if err != nil || res.Denial != nil {
				t.Fatalf("Apply: %v, denial %v", err, res.Denial)
			}
			if res.ReleasedFrom != tt.released {
				t.Errorf("ReleasedFrom %q, want %q", res.ReleasedFrom, tt.released)
			}
			for id, want := range map[string]string{"a": tt.holderEmail, "b": tt.email} {
				if got := e.user(id).Email; got != want {
					t.Errorf("user %s's email %q, want %q", id, got, want)
				}
			}
		})
	}
}
