package postgres

import (
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// RunningInstances counts the instances on this store's database only:
// a listener of another database of the same cluster (another
// deployment, a staging copy) must not make cli restore or migrate refuse
// to touch this one, and one on this database must.
func TestRunningInstancesCountsThisDatabaseOnly(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	mine, other := openDSN(t, dsn), openDSN(t, pgtest.NewDatabase(t))
	if inv := listen(t, other).next(t, 10*time.Second); !inv.All {
		t.Fatalf("first invalidation %+v, want All (subscribed)", inv)
	}
	count := func(want int, when string) {
		t.Helper()
		n, err := mine.RunningInstances(t.Context())
		if err != nil {
			t.Fatalf("RunningInstances %s: %v", when, err)
		}
		if n != want {
			t.Errorf("RunningInstances %s = %d, want %d", when, n, want)
		}
	}
	count(0, "with a listener on another database only")

	peer := openDSN(t, dsn)
	if inv := listen(t, peer).next(t, 10*time.Second); !inv.All {
		t.Fatalf("first invalidation %+v, want All (subscribed)", inv)
	}
	count(1, "with another instance listening on this database")
}
