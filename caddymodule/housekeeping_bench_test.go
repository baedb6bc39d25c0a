package caddymodule

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// BenchmarkHousekeepingBatch is one housekeeping transaction, which holds
// the store's write lock while it runs: deleting housekeepingBatch expired
// single-use IDs, or as many audit events past the retention, and the
// commit. Each iteration refills the store outside the timer.
//
//	go test -run '^$' -bench HousekeepingBatch -benchmem ./caddymodule/
func BenchmarkHousekeepingBatch(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Now()
	fill := func(b *testing.B, round int) {
		b.Helper()
		err := db.Update(ctx, func(tx store.Tx) error {
			for i := range housekeepingBatch {
				if _, err := tx.Consume("oidc-state", fmt.Sprintf("r%d-state-%d-0123456789abcdef", round, i), now.Add(-time.Minute)); err != nil {
					return err
				}
				err := tx.Audit(store.Event{Time: now.Add(-100 * 24 * time.Hour), Type: store.EventLoginFailed, IdP: "okta",
					UserID: "u-0123456789abcdef", Reason: "state_mismatch"})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name  string
		prune func(tx store.Tx) (int, error)
	}{
		{"consumed", func(tx store.Tx) (int, error) { return tx.PruneConsumed(now, housekeepingBatch) }},
		{"audit", func(tx store.Tx) (int, error) {
			return tx.PruneAudit(now.Add(-DefaultAuditRetention), housekeepingBatch)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			round := 0
			for b.Loop() {
				b.StopTimer()
				round++
				fill(b, round)
				b.StartTimer()
				var n int
				if err := db.Update(ctx, func(tx store.Tx) error { n, err = bc.prune(tx); return err }); err != nil || n != housekeepingBatch {
					b.Fatalf("pruned %d: %v", n, err)
				}
			}
		})
	}
}
