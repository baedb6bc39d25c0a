package bolt

import (
	"errors"
	"fmt"
	"os"

	"github.com/caddy-sso/caddy-sso/store"
)

var _ store.FileStore = (*DB)(nil)

// CreatedNew reports whether Open laid out a new, empty store (the file
// was missing or empty), to the first caller only. On a first start that
// is expected; on any other it means the store file was removed or moved
// away, and with it every key (a new SAML SP key, every session ended), so
// the caller logs it (docs/operations.md, "Where the store lives").
func (db *DB) CreatedNew() bool { return db.createdNew.Swap(false) }

// CheckFile returns nil while db's path names the file db has open. bbolt
// keeps the file it opened: after an rm of the path it writes on to the
// unlinked file, and the next start creates a new, empty store at the path;
// after a file is moved onto the path it writes on to the old one, and the
// next start opens the other. Either way what it writes meanwhile is lost,
// and nothing else says so. The identity compared is the one Open read
// right after it took the file's lock.
func (db *DB) CheckFile() error {
	const never = "never remove or replace the file of a running store: restore a backup with `caddy sso restore` while Caddy is stopped (docs/operations.md)"
	fi, err := os.Stat(db.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("the store file %s was removed while Caddy runs: what Caddy writes goes to the removed file and is lost when it stops, "+
			"and the next start creates a new, empty store with new keys; to keep the data, run `caddy sso backup` now, "+
			"stop Caddy, `caddy sso restore` that backup, and start Caddy; %s", db.path, never)
	case err != nil:
		return fmt.Errorf("cannot check the store file %s (is it still the file Caddy opened?): %w", db.path, err)
	case !os.SameFile(fi, db.file):
		return fmt.Errorf("the store file %s was replaced while Caddy runs: Caddy still uses the file it opened, and what it writes "+
			"is lost when it stops, as the next start opens the new file; restart Caddy now to use the new file, or, to keep the running "+
			"store, run `caddy sso backup` now, stop Caddy, `caddy sso restore` that backup, and start Caddy; %s", db.path, never)
	}
	return nil
}
