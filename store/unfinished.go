package store

import (
	"context"
	"errors"
	"fmt"
)

// UnfinishedImport names the secret a restore or migration (store/portable)
// keeps in its target from its first write until it has read the target
// back. A PostgreSQL target is written in batches, not in one transaction
// (docs/operations.md, "Restore"), so an import that stops
// part-way leaves part of the backup there; this mark keeps Caddy and the
// offline tools from taking that for a store.
const UnfinishedImport = "unfinished-import"

// ErrUnfinishedImport is the error of opening a store that holds the
// UnfinishedImport mark.
var ErrUnfinishedImport = errors.New("it holds part of a restore or migration that did not finish")

// CheckFinished fails, wrapping ErrUnfinishedImport, when st holds part of
// an import that did not finish.
func CheckFinished(ctx context.Context, st Store) error {
	var mark []byte
	err := st.View(ctx, func(tx Tx) error {
		var err error
		mark, err = tx.LoadOrStoreSecret(UnfinishedImport, nil)
		if errors.Is(err, ErrNotFound) {
			mark, err = nil, nil
		}
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("looking for an unfinished restore: %w", err)
	case mark != nil:
		return fmt.Errorf("%w (%s): run the same `caddy sso restore --force` or `caddy sso migrate --force` again to complete it, or restore another backup with --force",
			ErrUnfinishedImport, mark)
	}
	return nil
}
