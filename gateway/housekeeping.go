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

// FileCheckInterval is how often the Housekeeper checks that a store kept
// in one file (store.FileStore, bbolt) still has its file at its path: an
// os.Stat, cheap, and frequent because everything written after the file
// was removed or replaced is lost at the next restart.
const FileCheckInterval = time.Minute

// Housekeeper keeps the store bounded (docs/security.md, "Unauthenticated
// traffic"): single-use IDs once they have expired, and audit events older
// than the retention. The sso app runs one while it runs. For a store kept
// in one file it also says in the log when opening it created a new, empty
// store, and when the file has been removed or replaced under it
// (docs/operations.md, "Where the store lives").
type Housekeeper struct {
	DB        store.Store
	Retention time.Duration // 0: audit events are kept
	Logger    *zap.Logger
	Now       func() time.Time
	// FileCheckEvery is how often the store's file is checked; 0 means
	// FileCheckInterval.
	FileCheckEvery time.Duration
}

// Run prunes at once, then every interval, until ctx ends.
func (k *Housekeeper) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var fileTick <-chan time.Time
	fs, _ := k.DB.(store.FileStore)
	var fileProblem string // what the last check found; "" while the file is fine
	if fs != nil {
		if fs.CreatedNew() {
			// Expected on a first start; on any other it means the
			// store's file was removed or moved, and its keys with it.
			// INFO, not WARN: every first start says it, and Caddy's
			// default log shows INFO.
			k.Logger.Info("created a new, empty store (expected on a first start; otherwise the store's file was removed or moved: "+
				"every key is new, the SAML SP key too, and every session has ended; to get the old store back, "+
				"stop Caddy and restore a backup with `caddy sso restore`)", zap.String("path", fs.Path()))
		}
		every := k.FileCheckEvery
		if every <= 0 {
			every = FileCheckInterval
		}
		ft := time.NewTicker(every)
		defer ft.Stop()
		fileTick = ft.C
		fileProblem = k.checkFile(fs, fileProblem)
	}
	k.housekeep(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-fileTick: // nil, so never, for a store without a file
			fileProblem = k.checkFile(fs, fileProblem)
		case <-tick.C:
			k.housekeep(ctx)
		}
	}
}

func (k *Housekeeper) housekeep(ctx context.Context) {
	stats, err := store.Housekeep(ctx, k.DB, k.Now(), store.HousekeepOptions{AuditRetention: k.Retention})
	fields := []zap.Field{zap.Int("single_use_ids_pruned", stats.Consumed), zap.Int("audit_events_pruned", stats.AuditEvents),
		zap.Int("transactions", stats.Transactions)}
	switch {
	case err != nil && ctx.Err() == nil:
		k.Logger.Error("housekeeping", append(fields, zap.Error(err))...)
	case stats.Consumed > 0 || stats.AuditEvents > 0:
		k.Logger.Info("housekeeping", fields...)
	}
}

// checkFile checks the store's file and logs what it finds when that
// differs from the last check (last, "" for fine): once per change, not
// once a minute while it lasts. It returns what it found.
func (k *Housekeeper) checkFile(fs store.FileStore, last string) string {
	var now string
	if err := fs.CheckFile(); err != nil {
		now = err.Error()
	}
	switch {
	case now == last:
	case now != "":
		k.Logger.Error(now, zap.String("path", fs.Path()))
	default:
		k.Logger.Info("the store file is at its path again", zap.String("path", fs.Path()))
	}
	return now
}
