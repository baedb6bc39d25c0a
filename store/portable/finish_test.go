package portable

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestImportFinishCommitsWithTheEnd: ImportOptions.Finish writes in the
// transaction that lifts the unfinished-import mark, once, and never into a
// rehearsal's scratch store. When it fails, the target stays marked
// (ErrPartial), so that a replaced store is never opened without what
// Finish writes (cli's store.restored / store.migrated event, which used
// to be written after the import had committed, and could be missing).
func TestImportFinishCommitsWithTheEnd(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 100)
	backup := export(t, src)
	const typ = "test.replaced"

	for _, tt := range []struct {
		name string
		run  func(to store.Store, opt ImportOptions) error
	}{
		{"import", func(to store.Store, opt ImportOptions) error {
			_, err := Import(ctx, to, bytes.NewReader(backup), opt)
			return err
		}},
		{"migration", func(to store.Store, opt ImportOptions) error {
			_, err := Migrate(ctx, src, to, opt)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			calls := 0
			finish := func(fail error) func(tx store.Tx) error {
				return func(tx store.Tx) error {
					calls++
					if err := tx.Audit(store.Event{Type: typ}); err != nil {
						return err
					}
					return fail
				}
			}
			refused := errors.New("event refused")
			err := tt.run(db, ImportOptions{BatchSize: 64, Finish: finish(refused)})
			if !errors.Is(err, refused) || !errors.Is(err, ErrPartial) {
				t.Fatalf("Finish failing: %v, want its error and ErrPartial", err)
			}
			if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) {
				t.Errorf("Finish failed, yet the target is taken for finished: %v", err)
			}
			if d, _ := dump(t, db); strings.Contains(d, typ) {
				t.Error("Finish failed, yet what it wrote was kept")
			}

			calls = 0
			if err := tt.run(db, ImportOptions{Force: true, BatchSize: 64, Finish: finish(nil)}); err != nil {
				t.Fatalf("again with Force: %v", err)
			}
			if calls != 1 {
				t.Errorf("Finish ran %d times, want once (not in the rehearsal)", calls)
			}
			if err := store.CheckFinished(ctx, db); err != nil {
				t.Errorf("after the forced rerun: %v", err)
			}
			if d, _ := dump(t, db); strings.Count(d, `"type":"`+typ+`"`) != 1 {
				t.Errorf("the target holds not one %s event", typ)
			}
		})
	}
}
