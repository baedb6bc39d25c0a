package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestSkewedHousekeepingKeepsLiveSingleUseIDs: instance A accepts a SAML
// assertion, which stays acceptable for two more minutes (its until is
// absolute, taken from the assertion). Instance C, whose clock runs five
// minutes ahead, then runs its housekeeping. A replay of the assertion at
// instance B, whose clock is right, must still be refused: C's clock must
// not reopen an ID the others still hold as used (store.ConsumedPruneMargin).
func TestSkewedHousekeepingKeepsLiveSingleUseIDs(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b, c := openDSN(t, dsn), openDSN(t, dsn), openDSN(t, dsn)
	ctx := context.Background()
	until := time.Now().Add(2 * time.Minute)
	consume := func(db *DB) bool {
		var first bool
		update(t, db, func(tx store.Tx) error {
			var err error
			first, err = tx.Consume("saml", "_assertion-1", until)
			return err
		})
		return first
	}
	if !consume(a) {
		t.Fatal("first use refused")
	}
	stats, err := store.Housekeep(ctx, c, time.Now().Add(5*time.Minute), store.HousekeepOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if consume(b) {
		t.Errorf("a replay at a correctly clocked instance was accepted after housekeeping at an instance 5 minutes ahead (it pruned %d IDs)", stats.Consumed)
	}
	// Once the margin has passed, housekeeping does prune it.
	stats, err = store.Housekeep(ctx, c, until.Add(store.ConsumedPruneMargin), store.HousekeepOptions{})
	if err != nil || stats.Consumed != 1 {
		t.Errorf("housekeeping past the margin = %+v, %v; want the ID pruned", stats, err)
	}
}
