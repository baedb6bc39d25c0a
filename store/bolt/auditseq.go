package bolt

import (
	"context"
	"fmt"

	"github.com/caddy-sso/caddy-sso/store"
)

// AuditSeq is the last audit event number the store has handed out
// (its audit bucket's sequence), whether or not that event is still
// stored: the next event is numbered after it.
func (db *DB) AuditSeq(ctx context.Context) (uint64, error) {
	var n uint64
	err := db.View(ctx, func(stx store.Tx) error {
		n = stx.(*tx).bucket(bucketAudit).Sequence()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bolt: audit sequence: %w", err)
	}
	return n, nil
}

// NumberAuditAfter makes the store number its next audit events after n,
// when it would number them lower. A restore or migration that replaces a
// bbolt file sets the old file's AuditSeq on the new one: an older
// backup's last number is lower, and events numbered again from there
// would be skipped by everyone reading the trail "after" a number the old
// file had handed out (`caddy sso audit --follow`, --after;
// docs/operations.md, "Restoring an older backup").
func (db *DB) NumberAuditAfter(ctx context.Context, n uint64) error {
	err := db.Update(ctx, func(stx store.Tx) error {
		t, ok := stx.(*tx)
		if !ok {
			return nil // a rehearsal: this write reads nothing worth reading ahead
		}
		if b := t.bucket(bucketAudit); n > b.Sequence() {
			return b.SetSequence(n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: number audit events after %d: %w", n, err)
	}
	return nil
}
