package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

func TestHousekeep(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db := openBolt(t, func(tx store.Tx) error {
		for i := range 25 {
			if _, err := tx.Consume("state", fmt.Sprint("old", i), now.Add(-store.ConsumedPruneMargin-time.Minute)); err != nil {
				return err
			}
		}
		if _, err := tx.Consume("state", "live", now.Add(time.Minute)); err != nil {
			return err
		}
		// Expired by this clock, but not by the margin: kept (see
		// ConsumedPruneMargin).
		if _, err := tx.Consume("state", "recent", now.Add(-time.Minute)); err != nil {
			return err
		}
		for i := range 23 { // one a day: 23 days up to yesterday
			if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded, Time: now.Add(-time.Duration(23-i) * 24 * time.Hour)}); err != nil {
				return err
			}
		}
		return nil
	})
	counting := storetest.NewCounting(db)
	stats, err := store.Housekeep(ctx, counting, now, store.HousekeepOptions{AuditRetention: 10 * 24 * time.Hour, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	// 25 IDs in 3 transactions (10, 10, 5); events older than 10 days:
	// 13 of them, in 2 (10, 3).
	want := store.HousekeepStats{Consumed: 25, AuditEvents: 13, Transactions: 5}
	if stats != want || counting.Commits() != 5 {
		t.Errorf("Housekeep = %+v in %d commits, want %+v", stats, counting.Commits(), want)
	}
	_ = db.View(ctx, func(tx store.Tx) error {
		c, _ := tx.Counts()
		if c.AuditEvents != 10 {
			t.Errorf("%d audit events left, want 10", c.AuditEvents)
		}
		return nil
	})
	// Zero retention keeps every event.
	stats, err = store.Housekeep(ctx, db, now.Add(365*24*time.Hour), store.HousekeepOptions{})
	if err != nil || stats.AuditEvents != 0 || stats.Consumed != 2 {
		t.Errorf("Housekeep without retention = %+v, %v", stats, err)
	}
	// A cancelled context stops it.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.Housekeep(cctx, db, now, store.HousekeepOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Housekeep on a cancelled context: %v", err)
	}
}

// TestHousekeepStoreError: a store that fails (here one closed under it)
// makes Housekeep return the error, naming what it was pruning, instead of
// reporting a clean run or retrying until its context ends.
func TestHousekeepStoreError(t *testing.T) {
	db := openBolt(t, nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := store.Housekeep(ctx, db, time.Now(), store.HousekeepOptions{AuditRetention: store.DefaultAuditRetention})
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "housekeeping: single-use IDs") {
		t.Errorf("Housekeep on a closed store = %v, want the store's error", err)
	}
}

// backgroundRecorder records whether each Update it passes on was marked
// by store.Background.
type backgroundRecorder struct {
	store.Store
	updates, foreground int
}

func (b *backgroundRecorder) Update(ctx context.Context, fn func(store.Tx) error) error {
	b.updates++
	if !store.IsBackground(ctx) {
		b.foreground++
	}
	return b.Store.Update(ctx, fn)
}

// TestHousekeepUpdatesAreBackground: every transaction Housekeep runs is
// a background one (store.Background), so that on bolt a sign-in that
// arrives while it prunes goes first and waits for one item at most, not
// behind a queue of pruning batches.
func TestHousekeepUpdatesAreBackground(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db := openBolt(t, func(tx store.Tx) error {
		for i := range 5 {
			if _, err := tx.Consume("state", fmt.Sprint("old", i), now.Add(-2*store.ConsumedPruneMargin)); err != nil {
				return err
			}
			if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded, Time: now.Add(-30 * 24 * time.Hour)}); err != nil {
				return err
			}
		}
		return nil
	})
	rec := &backgroundRecorder{Store: db}
	stats, err := store.Housekeep(ctx, rec, now, store.HousekeepOptions{AuditRetention: 24 * time.Hour, Batch: 2})
	if err != nil || stats.Consumed != 5 || stats.AuditEvents != 5 {
		t.Fatalf("Housekeep = %+v, %v; want 5 IDs and 5 events pruned", stats, err)
	}
	if rec.updates == 0 || rec.foreground != 0 {
		t.Errorf("Housekeep ran %d of its %d Updates without store.Background", rec.foreground, rec.updates)
	}
}

// TestHousekeepPrunesPastAClockAheadEvent: Housekeep gives PruneAudit its
// own now, so an event stamped a little in the future (written while an
// instance's clock ran ahead) is passed over, and the events after it that
// are past retention are still pruned rather than kept until its time
// comes.
func TestHousekeepPrunesPastAClockAheadEvent(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db := openBolt(t, func(tx store.Tx) error {
		for _, at := range []time.Time{now.Add(30 * time.Minute), now.Add(-30 * 24 * time.Hour), now.Add(-29 * 24 * time.Hour)} {
			if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded, Time: at}); err != nil {
				return err
			}
		}
		return nil
	})
	stats, err := store.Housekeep(ctx, db, now, store.HousekeepOptions{AuditRetention: 10 * 24 * time.Hour})
	if err != nil || stats.AuditEvents != 2 {
		t.Errorf("Housekeep = %+v, %v; want the 2 events past retention pruned, past the one stamped 30 minutes ahead", stats, err)
	}
}

// openBolt is a new bbolt store holding what fill writes (nothing when
// fill is nil), closed when the test ends.
func openBolt(t *testing.T, fill func(tx store.Tx) error) *bolt.DB {
	t.Helper()
	db := backendtest.OpenBolt(t)
	if fill != nil {
		if err := db.Update(context.Background(), fill); err != nil {
			t.Fatal(err)
		}
	}
	return db
}
