package backend

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// markUnfinished leaves in the bbolt file at path the mark of a restore
// that stopped part-way, as store/portable does at its first write.
func markUnfinished(t *testing.T, path string) {
	t.Helper()
	st, err := Open(context.Background(), Spec{Backend: Bolt, Path: path, Importing: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret(store.UnfinishedImport, []byte("restore of backup.json"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesUnfinishedImport: a store holding part of a restore that
// did not finish is refused by every open but the import's own, and the
// refused open leaves the file unlocked, so that the restore can be run
// again at once.
func TestOpenRefusesUnfinishedImport(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sso.db")
	markUnfinished(t, path)

	for _, readOnly := range []bool{false, true} {
		st, err := Open(ctx, Spec{Backend: Bolt, Path: path, ReadOnly: readOnly, LockTimeout: time.Second}, nil)
		if !errors.Is(err, store.ErrUnfinishedImport) {
			if st != nil {
				_ = st.Close()
			}
			t.Fatalf("Open(ReadOnly: %v) = %v, want ErrUnfinishedImport", readOnly, err)
		}
		if st != nil {
			t.Errorf("Open(ReadOnly: %v) returned a store with its error", readOnly)
		}
	}
	// The refused opens closed the file: the import opens it without
	// waiting out its lock.
	st, err := Open(ctx, Spec{Backend: Bolt, Path: path, Importing: true, LockTimeout: time.Second}, nil)
	if err != nil {
		t.Fatalf("Open(Importing) after a refused open: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A store without the mark opens for everyone.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	for _, importing := range []bool{false, true} {
		st, err := Open(ctx, Spec{Backend: Bolt, Path: fresh, Importing: importing}, nil)
		if err != nil {
			t.Fatalf("Open(Importing: %v) of a finished store: %v", importing, err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenBoltOptions: Open hands the Spec's bbolt settings to the store:
// ReadOnly takes a shared lock (two readers at once) and refuses writes,
// LockTimeout bounds the wait for a held file, and OnWrite hears of each
// write.
func TestOpenBoltOptions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sso.db")
	var writes atomic.Int32
	st, err := Open(ctx, Spec{Backend: Bolt, Path: path, OnWrite: func(bolt.WriteHold) { writes.Add(1) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret("test-secret", []byte("x"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if writes.Load() == 0 {
		t.Error("OnWrite was not told of the write")
	}

	// The file is held: a second open gives up after LockTimeout, not
	// bolt's default.
	start := time.Now()
	if second, err := Open(ctx, Spec{Backend: Bolt, Path: path, LockTimeout: 200 * time.Millisecond}, nil); err == nil {
		_ = second.Close()
		t.Error("a second open of a held file succeeded")
	} else if waited := time.Since(start); waited >= bolt.DefaultLockTimeout {
		t.Errorf("a second open waited %v, want about its LockTimeout of 200ms", waited)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	ro := Spec{Backend: Bolt, Path: path, ReadOnly: true, LockTimeout: time.Second}
	a, err := Open(ctx, ro, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, ro, nil)
	if err != nil {
		t.Fatalf("a second read-only open: %v", err)
	}
	defer b.Close()
	if err := a.Update(ctx, func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret("other", []byte("y"))
		return err
	}); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("a write to a read-only store: %v, want ErrReadOnly", err)
	}
}

// TestOpenUnknownBackend: Open names the backend it does not know.
func TestOpenUnknownBackend(t *testing.T) {
	st, err := Open(context.Background(), Spec{Backend: "sqlite", Path: filepath.Join(t.TempDir(), "x")}, nil)
	if err == nil || st != nil || !strings.Contains(err.Error(), `unknown store backend "sqlite"`) {
		t.Errorf("Open = %v, %v", st, err)
	}
}
