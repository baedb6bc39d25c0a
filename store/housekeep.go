package store

import (
	"context"
	"fmt"
	"time"
)

// DefaultAuditRetention is how long audit events are kept when the
// configuration says nothing: long enough for a quarter's access review.
// The Caddy app's audit_retention setting defaults to it.
const DefaultAuditRetention = 90 * 24 * time.Hour

// DefaultHousekeepBatch bounds the deletions of one housekeeping
// transaction, so that a sign-in waiting behind one waits briefly (see
// docs/operations.md for the measured lock times).
const DefaultHousekeepBatch = 256

// HousekeepOptions tune Housekeep.
type HousekeepOptions struct {
	// AuditRetention deletes audit events older than this; zero keeps
	// them all. Callers pass DefaultAuditRetention unless configured.
	AuditRetention time.Duration
	// Batch bounds the deletions per transaction; zero means
	// DefaultHousekeepBatch.
	Batch int
}

// HousekeepStats is what one Housekeep run deleted, and in how many
// transactions.
type HousekeepStats struct {
	Consumed     int // expired single-use IDs
	AuditEvents  int // audit events past retention
	Transactions int
}

// Housekeep deletes what the store keeps only for a while: single-use IDs
// (OIDC states, SAML assertion IDs) whose replay window has passed, and
// audit events older than the retention. It works in transactions of at
// most opt.Batch deletions, each its own Update, so the write lock is never
// held for long and sign-ins interleave; it stops early, with ctx's error,
// when ctx ends. Expired sessions are swept by session.Manager, which must
// also drop them from its cache.
func Housekeep(ctx context.Context, st Store, now time.Time, opt HousekeepOptions) (HousekeepStats, error) {
	batch := opt.Batch
	if batch <= 0 {
		batch = DefaultHousekeepBatch
	}
	var stats HousekeepStats
	loop := func(what string, prune func(Tx) (int, error), total *int) error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			var n int
			err := st.Update(ctx, func(tx Tx) error {
				var err error
				n, err = prune(tx)
				return err
			})
			if err != nil {
				return fmt.Errorf("housekeeping: %s: %w", what, err)
			}
			stats.Transactions++
			*total += n
			if n < batch {
				return nil
			}
		}
	}
	err := loop("single-use IDs", func(tx Tx) (int, error) { return tx.PruneConsumed(now, batch) }, &stats.Consumed)
	if err != nil {
		return stats, err
	}
	if opt.AuditRetention > 0 {
		before := now.Add(-opt.AuditRetention)
		err = loop("audit events", func(tx Tx) (int, error) { return tx.PruneAudit(before, batch) }, &stats.AuditEvents)
	}
	return stats, err
}
