//go:build linux

// Linux only, as main.go is (fadvise, fdatasync).

package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/bench/internal/fixture"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestShortRun runs every phase on a small generated store, so that the
// load program keeps working as the code under it changes.
func TestShortRun(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.db")
	db, err := bolt.Open(p, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := fixture.Generate(context.Background(), db, 3000, 1000, now, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Cold, and without rehearsals: the flags' paths (the rehearsal
	// itself is tested in store/bolt).
	*path, *short, *cold, *rehearse = p, true, true, false
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
