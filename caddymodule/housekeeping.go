package caddymodule

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// DefaultAuditRetention is how long audit events are kept when the global
// sso option has no audit_retention.
const DefaultAuditRetention = 90 * 24 * time.Hour

// Housekeeping schedule: the tables that grow with traffic are pruned at
// Start and then every housekeepingInterval, housekeepingBatch rows per
// transaction, so that one transaction holds the store's write lock only
// for a batch and sign-ins interleave between batches. (Sessions have
// their own sweep, session.Manager.Run.)
const (
	housekeepingInterval = 15 * time.Minute
	housekeepingBatch    = 500
)

// housekeeper keeps the store bounded (docs/security.md, "Unauthenticated
// traffic"): single-use IDs (OIDC states, SAML assertion IDs) once they
// have expired, and audit events older than the retention.
type housekeeper struct {
	db        store.Store
	retention time.Duration // 0: audit events are kept
	logger    *zap.Logger
	now       func() time.Time
}

// run prunes at once, then every interval, until ctx ends.
func (k *housekeeper) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		consumed, audit, err := k.prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			k.logger.Error("housekeeping", zap.Int("single_use_ids_pruned", consumed), zap.Int("audit_events_pruned", audit), zap.Error(err))
		case consumed > 0 || audit > 0:
			k.logger.Info("housekeeping", zap.Int("single_use_ids_pruned", consumed), zap.Int("audit_events_pruned", audit))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// prune deletes what is due, batch by batch, and says how much.
func (k *housekeeper) prune(ctx context.Context) (consumed, audit int, err error) {
	now := k.now()
	if consumed, err = k.batches(ctx, func(tx store.Tx) (int, error) {
		return tx.PruneConsumed(now, housekeepingBatch)
	}); err != nil {
		return consumed, 0, fmt.Errorf("pruning single-use IDs: %w", err)
	}
	if k.retention <= 0 {
		return consumed, 0, nil
	}
	before := now.Add(-k.retention)
	if audit, err = k.batches(ctx, func(tx store.Tx) (int, error) {
		return tx.PruneAudit(before, housekeepingBatch)
	}); err != nil {
		return consumed, audit, fmt.Errorf("pruning audit events before %s: %w", before.Format(time.RFC3339), err)
	}
	return consumed, audit, nil
}

// batches runs prune, one transaction each, until a batch is not full.
func (k *housekeeper) batches(ctx context.Context, prune func(store.Tx) (int, error)) (int, error) {
	total := 0
	for {
		var n int
		err := k.db.Update(ctx, func(tx store.Tx) error {
			var err error
			n, err = prune(tx)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < housekeepingBatch || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
