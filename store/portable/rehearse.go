package portable

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// ErrSameStore is Migrate's refusal of a target that is its source under
// another name (two connection strings for one PostgreSQL database):
// replacing the target would empty the source before it was read.
var ErrSameStore = errors.New("source and target are the same store")

// rehearse runs load into a scratch bbolt store in the system's temporary
// directory before Force empties the target: a source that reads well but
// holds what no store takes (an empty secret, a session without its user)
// then fails with the target untouched, instead of after it was emptied.
// load imports with ImportOptions.Scratch: the scratch store is thrown
// away, so its failure must not say that a target holds part of the
// source (ErrPartial), which this one's callers would pass on.
func rehearse(ctx context.Context, load func(st store.Store) error) error {
	dir, err := os.MkdirTemp("", "sso-import-check-")
	if err != nil {
		return fmt.Errorf("checking the source in a scratch store: %w", err)
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "check.db"), bolt.Options{})
	if err != nil {
		return fmt.Errorf("checking the source in a scratch store: %w", err)
	}
	defer db.Close()
	if err := load(db); err != nil {
		return fmt.Errorf("the source does not load into an empty store, so the target was not touched: %w", err)
	}
	return ctx.Err()
}

// probeKind is the single-use ID kind sameStore leaves in a target; Force
// empties the target of it with the rest.
const probeKind = "portable_probe"

// sameStore reports whether from and to are one store: a single-use ID
// made in to is visible in from. The ID expires within a minute.
func sameStore(ctx context.Context, from, to store.Store) (bool, error) {
	probe := rand.Text()
	err := to.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Consume(probeKind, probe, time.Now().Add(time.Minute))
		return err
	})
	if err != nil {
		return false, err
	}
	var seen bool
	err = from.View(ctx, func(tx store.Tx) error {
		return tx.ForEachConsumed(func(kind, id string, _ time.Time) error {
			if kind == probeKind && id == probe {
				seen = true
				return errStop
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	return seen, nil
}
