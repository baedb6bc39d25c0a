package provision_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// lookupTx records the emails a transaction looks users up by.
type lookupTx struct {
	store.Tx
	emails []string
}

func (t *lookupTx) UserByEmail(email string) (*store.User, error) {
	t.emails = append(t.emails, store.FoldName(email))
	return t.Tx.UserByEmail(email)
}

var errRollBack = errors.New("roll back")

// TestEmailSpellingsLookedUpInOneOrder: two new subjects sign in at once
// with two spellings of one mailbox (the Unicode and the xn-- domain). In
// PostgreSQL each look-up locks its spelling's key: unless both take them
// in one order, whatever spelling each sent first, the two deadlock, and
// each waits out deadlock_timeout (a second) before one reruns.
func TestEmailSpellingsLookedUpInOneOrder(t *testing.T) {
	e := newEnv(t)
	var orders [][]string
	for _, email := range []string{"m@bücher.example", "m@xn--bcher-kva.example", "m@xn--bcher-kva.example."} {
		var tx *lookupTx
		err := e.db.Update(context.Background(), func(btx store.Tx) error {
			tx = &lookupTx{Tx: btx}
			res, err := provision.Apply(tx, "okta", provision.Rules{JIT: true},
				mapping.Profile{UniqueUserID: "sub-" + email, Email: email, FirstName: "M", LastName: "B"}, true, t0)
			if err != nil {
				return err
			}
			if res.Denial != nil {
				return res.Denial
			}
			return errRollBack // each sign-in on the same empty store
		})
		if !errors.Is(err, errRollBack) {
			t.Fatalf("%s: %v", email, err)
		}
		orders = append(orders, tx.emails)
	}
	for i, o := range orders[1:] {
		if !slices.Equal(o, orders[0]) {
			t.Errorf("look-ups of one mailbox in two orders:\n%q\n%q", orders[0], orders[i+1])
		}
	}
}

// TestEmailOwnerOfTheSpellingSent: a store made before the spellings of a
// mailbox were one may hold two of them, by two users. Looking them up in
// one order (above) must not change which holder a sign-in meets: the one
// holding the spelling it sent.
func TestEmailOwnerOfTheSpellingSent(t *testing.T) {
	e := newEnv(t)
	uni := e.seed(&store.User{ID: "u-unicode", Active: true, Email: "m@bücher.example", Source: store.SourceJIT})
	asc := e.seed(&store.User{ID: "u-ascii", Active: true, Email: "m@xn--bcher-kva.example", Source: store.SourceJIT})
	for _, tc := range []struct {
		email string
		owner *store.User
	}{
		{"m@bücher.example", uni},
		{"m@xn--bcher-kva.example", asc},
		{"M@XN--BCHER-KVA.EXAMPLE", asc},
	} {
		_, ev := e.expectDenied("entra", provision.Rules{JIT: true},
			mapping.Profile{UniqueUserID: "sub-" + tc.email, Email: tc.email, FirstName: "M", LastName: "B"}, true,
			provision.ReasonEmailConflict, store.EventJITConflict)
		if ev.UserID != tc.owner.ID {
			t.Errorf("%s: conflict with %s, want %s (the holder of the spelling sent)", tc.email, ev.UserID, tc.owner.ID)
		}
	}
}
