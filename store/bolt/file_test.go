package bolt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestCreatedNew: Open tells, once, that it laid out a new store, and an
// existing store was not created new, nor an empty file it filled.
func TestCreatedNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !db.CreatedNew() {
		t.Error("a store opened on a missing file: CreatedNew = false")
	}
	if db.CreatedNew() {
		t.Error("CreatedNew said it twice")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		db, err := Open(path, Options{ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		if db.CreatedNew() {
			t.Errorf("an existing store (read-only %v): CreatedNew = true", ro)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckFile: the check finds the store file removed, or replaced by
// another file (a copy moved into place), and passes again once the file
// Caddy holds is back at the path.
func TestCheckFile(t *testing.T) {
	db := openTest(t)
	update(t, db, func(tx store.Tx) error { _, err := tx.Secret("k", 32); return err })
	if err := db.CheckFile(); err != nil {
		t.Fatalf("the store's own file: %v", err)
	}
	path := db.Path()
	aside := path + ".aside"
	if err := os.Rename(path, aside); err != nil {
		t.Fatal(err)
	}
	err := db.CheckFile()
	if err == nil || !strings.Contains(err.Error(), "was removed") || !strings.Contains(err.Error(), path) {
		t.Errorf("after the file was moved away: %v", err)
	}
	// A copy of the store moved onto the path: same content, another file.
	raw, err := os.ReadFile(aside)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".copy", raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".copy", path); err != nil {
		t.Fatal(err)
	}
	err = db.CheckFile()
	if err == nil || !strings.Contains(err.Error(), "was replaced") || !strings.Contains(err.Error(), "caddy sso restore") {
		t.Errorf("after a copy was moved onto the path: %v", err)
	}
	if err := os.Rename(aside, path); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckFile(); err != nil {
		t.Errorf("with the store's own file back at the path: %v", err)
	}
	// Writes still reach the file at the path, which the next Open reads.
	update(t, db, func(tx store.Tx) error { _, err := tx.Secret("after", 32); return err })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret("after", nil)
		return err
	}); err != nil {
		t.Errorf("the write after the file came back: %v", err)
	}
}
