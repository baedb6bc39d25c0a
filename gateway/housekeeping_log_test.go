package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// failingStore is a store whose writes fail.
type failingStore struct{ store.Store }

func (failingStore) Update(context.Context, func(store.Tx) error) error {
	return errors.New("disk full")
}

// TestHousekeepingLog: a pass that pruned something says what at INFO
// (audit events alone count), one that pruned nothing says nothing, and
// one the store failed is an ERROR, unless it failed because the app is
// stopping.
func TestHousekeepingLog(t *testing.T) {
	db := backendtest.OpenBolt(t)
	now := time.Now()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		return tx.Audit(store.Event{Type: store.EventUserCreated, Time: now.Add(-48 * time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}

	core, logs := observer.New(zapcore.InfoLevel)
	k := &Housekeeper{DB: db, Retention: 24 * time.Hour, Logger: zap.New(core), Now: func() time.Time { return now }}
	k.housekeep(context.Background())
	lines := logs.TakeAll()
	if len(lines) != 1 || lines[0].Level != zapcore.InfoLevel || lines[0].ContextMap()["audit_events_pruned"] != int64(1) {
		t.Errorf("a pass that pruned an audit event logged %v, want one INFO line with audit_events_pruned 1", lines)
	}
	k.housekeep(context.Background())
	if lines := logs.TakeAll(); len(lines) != 0 {
		t.Errorf("a pass that pruned nothing logged %v", lines)
	}

	k.DB = failingStore{db}
	k.housekeep(context.Background())
	lines = logs.TakeAll()
	if len(lines) != 1 || lines[0].Level != zapcore.ErrorLevel || lines[0].ContextMap()["error"] == nil {
		t.Errorf("a failed pass logged %v, want one ERROR line with the error", lines)
	}
	stopping, cancel := context.WithCancel(context.Background())
	cancel()
	k.housekeep(stopping)
	if lines := logs.FilterLevelExact(zapcore.ErrorLevel).TakeAll(); len(lines) != 0 {
		t.Errorf("a pass ended by the app's stop logged %v", lines)
	}
}
