package postgres

import (
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// afterLinkTx runs after once UserByLink has read (and locked) the user a
// sign-in names.
type afterLinkTx struct {
	store.Tx
	after func()
}

func (p afterLinkTx) UserByLink(idp, subject string) (*store.User, error) {
	u, err := p.Tx.UserByLink(idp, subject)
	p.after()
	return u, err
}

// TestForceSignInTwoUsersLockOrder: a sign-in with update force whose
// email claim another user holds (a re-issued or swapped address,
// provision.forceProfile) writes two users when it takes the address
// (releaseEmail), and reads the holder when it keeps it (a conflict). It
// must keep the package's lock order (syncMembers: users in ID order),
// here with the signing-in user b's ID the higher: it locks both in ID
// order before it reads b (provision's knownUser, LockUsers), or only b
// when it merely checks the holder (UserHolding). Locking b and then a
// deadlocked (40P01, a rerun after deadlock_timeout) with a group change
// holding both, and with a's own sign-in taking b's address (a swap).
//
// Instance A signs in b and is held just after it read b by link; B then
// runs the other transaction, which waits for a lock A holds
// (pg_stat_activity); A goes on.
func TestForceSignInTwoUsersLockOrder(t *testing.T) {
	rules := provision.Rules{JIT: true, Update: provision.UpdateForce}
	for _, tc := range []struct {
		name string
		// aLinks are user a's links (the holder of the address): a
		// link at another IdP keeps it a's (mayTakeEmail).
		aLinks []store.Link
		// second is B's transaction.
		second string
		// aEmail, bEmail: the users' emails after both committed.
		aEmail, bEmail string
	}{
		{"group change adding both, address taken", []store.Link{{IdP: "okta", Subject: "sub-a"}}, "group", "", "a@x.io"},
		{"group change adding both, address kept (conflict)", []store.Link{{IdP: "okta", Subject: "sub-a"}, {IdP: "google", Subject: "g-a"}}, "group", "a@x.io", "b@x.io"},
		{"the other user's sign-in (addresses swapped)", []store.Link{{IdP: "okta", Subject: "sub-a"}}, "swap", "b@x.io", "a@x.io"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := twoInstances(t)
			putUser(t, a, &store.User{ID: "a", IdP: "okta", Email: "a@x.io", EmailVerified: true, Active: true, Source: store.SourceJIT, Links: tc.aLinks})
			putUser(t, a, &store.User{ID: "b", IdP: "okta", Email: "b@x.io", EmailVerified: true, Active: true, Source: store.SourceJIT,
				Links: []store.Link{{IdP: "okta", Subject: "sub-b"}}})

			signIn := func(tx store.Tx, sub, email string) error {
				res, err := provision.Apply(tx, "okta", rules, mapping.Profile{UniqueUserID: sub, Email: email}, true, time.Now())
				if err == nil && res.Denial != nil {
					err = res.Denial
				}
				return err
			}
			second := func(tx store.Tx) error {
				if tc.second == "swap" {
					return signIn(tx, "sub-a", "b@x.io")
				}
				return tx.PutGroup(&store.Group{IdP: "okta", DisplayName: "staff", Members: []string{"a", "b"}})
			}
			interleave(t, a, b, func(tx store.Tx, hold func()) error {
				return signIn(afterLinkTx{Tx: tx, after: hold}, "sub-b", "a@x.io")
			}, second, "the sign-in locked user b, then the holder of its address a (lower ID), against "+tc.second)
			view(t, a, func(tx store.Tx) error {
				for id, want := range map[string]string{"a": tc.aEmail, "b": tc.bEmail} {
					u, err := tx.User(id)
					if err != nil {
						return err
					}
					if u.Email != want {
						t.Errorf("user %s's email %q, want %q", id, u.Email, want)
					}
				}
				return nil
			})
		})
	}
}
