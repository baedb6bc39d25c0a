package gateway

import (
	"path/filepath"
	"testing"

	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// OpenTestStore opens a bbolt store with opts in a directory of the test's
// own, closed when the test ends; the tests of package gateway_test use it
// too. A store with the default options is backendtest.OpenBolt.
func OpenTestStore(t testing.TB, opts bolt.Options) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
