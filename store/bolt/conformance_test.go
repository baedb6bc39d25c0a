package bolt

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestConformance runs the store contract's suite against bolt, checking
// after each test that every index and counter matches the records, by
// rebuilding them (checkIndexes) and with Check.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db := openTest(t)
		t.Cleanup(func() {
			checkIndexes(t, db)
			checkOK(t, db)
		})
		return db
	})
}
