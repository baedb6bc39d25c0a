package caddymodule

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// housekeepingInterval is how often the tables that grow with traffic are
// pruned (after a first run at Start); store.Housekeep does it in small
// transactions, so sign-ins interleave. Sessions have their own sweep
// (session.Manager.Run).
const housekeepingInterval = 15 * time.Minute

// housekeeper keeps the store bounded (docs/security.md, "Unauthenticated
// traffic"): single-use IDs once they have expired, and audit events older
// than the retention.
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
		stats, err := store.Housekeep(ctx, k.db, k.now(), store.HousekeepOptions{AuditRetention: k.retention})
		fields := []zap.Field{zap.Int("single_use_ids_pruned", stats.Consumed), zap.Int("audit_events_pruned", stats.AuditEvents),
			zap.Int("transactions", stats.Transactions)}
		switch {
		case err != nil && ctx.Err() == nil:
			k.logger.Error("housekeeping", append(fields, zap.Error(err))...)
		case stats.Consumed > 0 || stats.AuditEvents > 0:
			k.logger.Info("housekeeping", fields...)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
