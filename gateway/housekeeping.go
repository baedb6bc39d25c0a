package gateway

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// HousekeepingInterval is how often the tables that grow with traffic are
// pruned (after a first run at start); store.Housekeep does it in small
// transactions, so sign-ins interleave. Sessions have their own sweep
// (session.Manager.Run).
const HousekeepingInterval = 15 * time.Minute

// Housekeeper keeps the store bounded (docs/security.md, "Unauthenticated
// traffic"): single-use IDs once they have expired, and audit events older
// than the retention. The sso app runs one while it runs.
type Housekeeper struct {
	DB        store.Store
	Retention time.Duration // 0: audit events are kept
	Logger    *zap.Logger
	Now       func() time.Time
}

// Run prunes at once, then every interval, until ctx ends.
func (k *Housekeeper) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		stats, err := store.Housekeep(ctx, k.DB, k.Now(), store.HousekeepOptions{AuditRetention: k.Retention})
		fields := []zap.Field{zap.Int("single_use_ids_pruned", stats.Consumed), zap.Int("audit_events_pruned", stats.AuditEvents),
			zap.Int("transactions", stats.Transactions)}
		switch {
		case err != nil && ctx.Err() == nil:
			k.Logger.Error("housekeeping", append(fields, zap.Error(err))...)
		case stats.Consumed > 0 || stats.AuditEvents > 0:
			k.Logger.Info("housekeeping", fields...)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
