package store_test

import (
	"context"
	"errors"
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
