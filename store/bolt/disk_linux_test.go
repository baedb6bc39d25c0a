package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/ci"
	"github.com/caddy-sso/caddy-sso/store"
)

// tmpfs mounts a tmpfs of the given size (mount's "size=" syntax) for the
// test and unmounts it at the end. Mounting needs root (CI runs as root);
// elsewhere the test is skipped, saying why.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		if ci.Running() {
			t.Fatalf("mount a %s tmpfs at %s: %v (CI runs as root and must run this test)", size, dir, err)
		}
		t.Skipf("cannot mount a tmpfs here (%v): this test needs root, as in CI", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestDiskFull: a commit that finds the disk full fails with an error that
// names the store and the cause, writes nothing, and the store works again
// once space is freed, with every index intact.
func TestDiskFull(t *testing.T) {
	dir := tmpfs(t, "8m")
	path := filepath.Join(dir, "sso.db")
	db, err := Open(path, Options{})
	must(t, err)
	defer func() { _ = db.Close() }() // the last one opened
	putUser(t, db, &store.User{ID: "before", Email: "before@x.io"})

	// Take the rest of the space.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	must(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	must(t, f.Close())

	big := func(tx store.Tx) error {
		for i := range 2000 {
			u := &store.User{ID: fmt.Sprintf("u%04d", i), Email: fmt.Sprintf("u%d@x.io", i), FirstName: strings.Repeat("x", 500)}
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		return nil
	}
	err = db.Update(context.Background(), big)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Update on a full disk: %v, want ENOSPC", err)
	}
	for _, s := range []string{path, "disk is full", "nothing of this change was written"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	view(t, db, func(tx store.Tx) error {
		if _, err := tx.User("u0000"); !isNotFound(err) {
			t.Errorf("a user of the failed commit is there: %v", err)
		}
		_, err := tx.User("before")
		return err
	})
	checkOK(t, db)

	must(t, os.Remove(filler))
	update(t, db, big)
	must(t, db.Close())
	db, err = Open(path, Options{})
	must(t, err)
	checkOK(t, db)
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error { _, err := tx.User("u1999"); return err })
}

// TestReadOnlyFileSystem: a store on a read-only file system cannot be
// opened for serving, with an error that says so; it can still be opened
// read-only for inspection.
func TestReadOnlyFileSystem(t *testing.T) {
	dir := tmpfs(t, "4m")
	path := filepath.Join(dir, "sso.db")
	db, err := Open(path, Options{})
	must(t, err)
	putUser(t, db, &store.User{ID: "u"})
	must(t, db.Close())
	must(t, syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""))

	_, err = Open(path, Options{})
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("Open on a read-only file system: %v, want EROFS", err)
	}
	for _, s := range []string{path, "read-only file system"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open for inspection: %v", err)
	}
	view(t, ro, func(tx store.Tx) error { _, err := tx.User("u"); return err })
	must(t, ro.Close())
}
