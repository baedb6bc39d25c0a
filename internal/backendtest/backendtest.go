// Package backendtest opens a fresh store of each backend, for tests that
// hold bolt and PostgreSQL to the same behaviour. A test package that uses
// it runs pgtest.Main from its TestMain, which stops the throwaway cluster.
package backendtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// Backend names a backend and opens an empty store of it, closed when the
// test ends.
type Backend struct {
	Name string
	Open func(t *testing.T) store.Store
}

// All are bolt (a file in the test's temporary directory) and PostgreSQL
// (a database of pgtest's throwaway cluster: skipped without PostgreSQL,
// failed under CI).
func All() []Backend {
	return []Backend{
		{"bolt", func(t *testing.T) store.Store { return OpenBolt(t) }},
		{"postgres", func(t *testing.T) store.Store {
			db, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.NewDatabase(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		}},
	}
}

// OpenBolt is an empty bbolt store in the test's temporary directory,
// closed when the test ends.
func OpenBolt(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
