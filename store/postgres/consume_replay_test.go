package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// errRollBack rolls a test's transaction back.
var errRollBack = errors.New("test: roll back")

// TestConsumeLiveIDTakesNoTransactionID: Consume refuses an ID whose entry
// is live without touching its row, so the refusal takes no transaction
// ID (a row lock would take one and write WAL): a replay, which anyone
// holding a captured message can repeat, costs a read. A fresh ID and an
// entry that expired a moment ago are taken, which takes one.
func TestConsumeLiveIDTakesNoTransactionID(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	now := time.Now()
	update(t, db, func(stx store.Tx) error {
		for id, until := range map[string]time.Time{"live": now.Add(time.Hour), "expired": now.Add(-300 * time.Millisecond)} {
			if fresh, err := stx.Consume("saml", id, until); err != nil || !fresh {
				return fmt.Errorf("first Consume of %s: %v, %w", id, fresh, err)
			}
		}
		return nil
	})
	for _, tc := range []struct {
		id        string
		wantFresh bool
	}{
		{"live", false},
		{"expired", true},
		{"new", true},
	} {
		err := db.Update(ctx, func(stx store.Tx) error {
			fresh, err := stx.Consume("saml", tc.id, time.Now().Add(time.Hour))
			if err != nil {
				return err
			}
			if fresh != tc.wantFresh {
				t.Errorf("Consume of %s: %v, want %v", tc.id, fresh, tc.wantFresh)
			}
			var xid *string
			if err := stx.(*tx).row("SELECT pg_current_xact_id_if_assigned()::text", nil, &xid); err != nil {
				return err
			}
			if took := xid != nil; took != tc.wantFresh {
				t.Errorf("Consume of %s (fresh %v) took a transaction ID: %v, want %v", tc.id, fresh, took, tc.wantFresh)
			}
			return errRollBack
		})
		if !errors.Is(err, errRollBack) {
			t.Fatalf("Update: %v", err)
		}
	}
}
