package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestCheckFinished: a store without the UnfinishedImport mark (a fresh
// one included) is finished; one that holds it, part of a restore or
// migration that stopped, is refused with ErrUnfinishedImport on every
// backend, so that Caddy and the offline tools do not take it for a store.
func TestCheckFinished(t *testing.T) {
	ctx := context.Background()
	for _, be := range backendtest.All() {
		t.Run(be.Name, func(t *testing.T) {
			st := be.Open(t)
			if err := store.CheckFinished(ctx, st); err != nil {
				t.Fatalf("CheckFinished on a fresh store: %v", err)
			}
			err := st.Update(ctx, func(tx store.Tx) error {
				_, err := tx.LoadOrStoreSecret(store.UnfinishedImport, []byte("restore of backup-2026-12-01"))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := store.CheckFinished(ctx, st); !errors.Is(err, store.ErrUnfinishedImport) {
				t.Errorf("CheckFinished on a store holding the mark = %v, want %v", err, store.ErrUnfinishedImport)
			}
		})
	}
}

// TestCheckFinishedStoreError: a store that cannot be read (here a bolt
// store closed under it) is not taken for a finished one: CheckFinished
// returns the store's error, so a caller does not go on with a store it
// could not check for a half-done restore.
func TestCheckFinishedStoreError(t *testing.T) {
	db := openBolt(t, nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	err := store.CheckFinished(context.Background(), db)
	if err == nil || errors.Is(err, store.ErrUnfinishedImport) || !strings.Contains(err.Error(), "looking for an unfinished restore") {
		t.Errorf("CheckFinished on a closed store = %v, want the store's error", err)
	}
}
