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

// ConsumedPruneMargin is how long past its until Housekeep keeps a
// single-use ID. The until is an absolute time, but Housekeep compares it
// with the clock of whichever instance runs it: one whose clock runs ahead
// would otherwise delete IDs that are still live for the others, and an
// instance with a correct clock would then take a replayed SAML response
// for a first use. Pruning only bounds the store's growth, so keeping IDs
// an hour longer costs nothing; an instance whose clock is off by more
// than this breaks more than replay protection (docs/cluster.md, "Keep
// the instances' clocks in sync").
const ConsumedPruneMargin = time.Hour

// HousekeepOptions tune Housekeep.
type HousekeepOptions struct {
	// AuditRetention deletes audit events older than this; zero keeps
	// them all. Callers pass DefaultAuditRetention unless configured.
	AuditRetention time.Duration
	// Batch fixes the deletions per transaction; zero sizes them with a
	// BatchSizer, so that each takes a few milliseconds on this disk.
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
// (OIDC states, SAML assertion IDs) whose replay window has passed by
// ConsumedPruneMargin, and
// audit events older than the retention. It works in small transactions,
// each its own Update (see HousekeepOptions.Batch), so the write lock is
// never held for long and sign-ins interleave; it stops early, with ctx's
// error, when ctx ends. Expired sessions are swept by session.Manager, which must
// also drop them from its cache.
func Housekeep(ctx context.Context, st Store, now time.Time, opt HousekeepOptions) (HousekeepStats, error) {
	var stats HousekeepStats
	loop := func(what string, prune func(tx Tx, limit int) (int, error), total *int) error {
		var sizer BatchSizer
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			limit, budget := opt.Batch, time.Duration(0)
			if limit <= 0 {
				limit, budget = sizer.Next(), sizer.Budget()
			}
			var (
				n       int
				drained bool
			)
			start := time.Now()
			err := st.Update(Background(ctx), func(tx Tx) error {
				var err error
				n, drained, err = RunItems(tx, limit, budget, func(_, k int) (int, error) { return prune(tx, k) })
				return err
			})
			sizer.Took(n, time.Since(start))
			if err != nil {
				return fmt.Errorf("housekeeping: %s: %w", what, err)
			}
			stats.Transactions++
			*total += n
			if drained {
				return nil
			}
			if err := sizer.Rest(ctx); err != nil {
				return err
			}
		}
	}
	consumedCutoff := now.Add(-ConsumedPruneMargin)
	err := loop("single-use IDs", func(tx Tx, limit int) (int, error) { return tx.PruneConsumed(consumedCutoff, limit) }, &stats.Consumed)
	if err != nil {
		return stats, err
	}
	if opt.AuditRetention > 0 {
		before := now.Add(-opt.AuditRetention)
		err = loop("audit events", func(tx Tx, limit int) (int, error) { return tx.PruneAudit(before, now, limit) }, &stats.AuditEvents)
	}
	return stats, err
}
