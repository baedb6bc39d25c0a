//go:build unix

// Unix only: the harness stops Caddy with SIGTERM, which Windows cannot send.

package stresstest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestDamagedStoreRefusesToStart: Caddy on a damaged store file, or on
// one that holds part of a restore or migration that did not finish, exits
// at start with a message that names the file and points to `caddy sso
// restore`; it never panics, never starts a new empty store in its place,
// and leaves the file as it was for the operator to inspect.
func TestDamagedStoreRefusesToStart(t *testing.T) {
	t.Parallel()
	w := startWorld(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, p, err := signInAs(ctx, w, "ada"); err != nil || p.Status != http.StatusOK {
		t.Fatalf("sign-in: %v %d %s", err, p.Status, p.Title())
	}
	if err := w.Caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(w.Store)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096 // bbolt's page size on linux/amd64 and arm64
	tests := []struct {
		name   string
		damage func(t *testing.T) []byte
		want   string
		// opens: bbolt opens the file (and writes its own start-up
		// records), and the store refuses what it holds.
		opens bool
	}{
		{"truncated", func(t *testing.T) []byte {
			// bbolt grows its file ahead of its data: cut inside the data,
			// at the last page the newer meta page counts as in use.
			var highWater uint64
			for _, meta := range []int{0, pageSize} {
				highWater = max(highWater, binary.LittleEndian.Uint64(good[meta+16+40:]))
			}
			if highWater < 4 {
				t.Fatalf("store data ends at page %d", highWater)
			}
			return good[:(highWater-1)*pageSize]
		}, "truncated", false},
		{"empty", func(*testing.T) []byte { return nil }, "empty", false},
		{"wrong magic", func(*testing.T) []byte {
			b := slices.Clone(good)
			for _, meta := range []int{0, pageSize} { // both meta pages
				copy(b[meta+16:], []byte{0xde, 0xad, 0xbe, 0xef})
			}
			return b
		}, "not a bbolt database", false},
		{"future schema version", func(t *testing.T) []byte {
			return editCopy(t, good, func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("99")) })
		}, "schema version 99", false},
		{"garbled pages", func(*testing.T) []byte {
			b := slices.Clone(good)
			for i := 2 * pageSize; i < len(b); i++ {
				b[i] = byte(i*7 + 3)
			}
			return b
		}, "damaged", false},
		{"unfinished restore", func(t *testing.T) []byte {
			// What `caddy sso migrate` into this file leaves when it stops
			// part-way (a restore into PostgreSQL, likewise).
			return editStore(t, good, func(tx store.Tx) error {
				_, err := tx.LoadOrStoreSecret(store.UnfinishedImport, []byte("migration started 2026-12-03T06:40:00Z"))
				return err
			})
		}, "did not finish (migration started 2026-12-03T06:40:00Z)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			damaged := tt.damage(t)
			if err := os.WriteFile(w.Store, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			dirBefore := listDir(t, filepath.Dir(w.Store))
			out := refusedStart(t, w)
			for _, want := range []string{w.Store, "caddy sso restore", tt.want} {
				if !strings.Contains(out, want) {
					t.Errorf("Caddy's refusal lacks %q:\n%s", want, tail(out, 3000))
				}
			}
			if after, _ := os.ReadFile(w.Store); !tt.opens && !bytes.Equal(after, damaged) {
				t.Error("Caddy changed the damaged file")
			}
			if after := listDir(t, filepath.Dir(w.Store)); !slices.Equal(after, dirBefore) {
				t.Errorf("Caddy changed the store's directory: %v, was %v", after, dirBefore)
			}
		})
	}
}

// editStore returns good changed by fn, through the store's own API.
func editStore(t *testing.T, good []byte, fn func(store.Tx) error) []byte {
	return editFile(t, good, func(path string) error {
		db, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			return err
		}
		if err := db.Update(context.Background(), fn); err != nil {
			_ = db.Close()
			return err
		}
		return db.Close()
	})
}

// editCopy returns good changed by fn, written with bbolt itself as a bug
// or a newer version could.
func editCopy(t *testing.T, good []byte, fn func(*bbolt.Tx) error) []byte {
	return editFile(t, good, func(path string) error {
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			return err
		}
		if err := db.Update(fn); err != nil {
			_ = db.Close()
			return err
		}
		return db.Close()
	})
}

// editFile returns good as edit leaves it, edited in a file of its own.
func editFile(t *testing.T, good []byte, edit func(path string) error) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edit.db")
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := edit(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
