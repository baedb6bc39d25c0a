package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestReplaceRereadsTheOldStore: replaceBoltFile reads the old store's
// audit number again right before the swap. A Caddy that started during a
// long restore numbered events meanwhile; the new file must number after
// them, or audit --follow and --after skip the events written next.
func TestReplaceRereadsTheOldStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sso.db") // no store yet: nothing numbered
	old, err := replaceBoltFile(ctx, path, "restore", io.Discard, func(store.Store) error {
		// Meanwhile a Caddy creates the store and numbers 41 events.
		db, err := bolt.Open(path, bolt.Options{NoSync: true})
		if err != nil {
			return err
		}
		if err := db.NumberAuditAfter(ctx, 41); err != nil {
			return err
		}
		return db.Close()
	}, func(store.Store, oldStore) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if old.auditSeq != 41 || old.unreadable {
		t.Errorf("the replaced store read as %+v, want audit number 41", old)
	}
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if seq, err := db.AuditSeq(ctx); err != nil || seq != 41 {
		t.Errorf("the new store numbers after %d (%v), want 41", seq, err)
	}
}

// TestRemoveLeftoversOnlyOwn: an interrupted run's directory is removed
// only when this user owns it: in a directory shared with another user, a
// leftover of theirs may be a run of theirs still going.
func TestRemoveLeftoversOnlyOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a directory another user owns needs root")
	}
	dir := t.TempDir()
	own, theirs := filepath.Join(dir, ".sso.db.restore-1"), filepath.Join(dir, ".sso.db.migrate-2")
	for _, d := range []string{own, theirs} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(theirs, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	removeLeftovers(dir, "sso.db")
	if _, err := os.Lstat(own); err == nil {
		t.Errorf("%s, this user's leftover, was kept", own)
	}
	if _, err := os.Lstat(theirs); err != nil {
		t.Errorf("%s, another user's, was removed: %v", theirs, err)
	}
}
