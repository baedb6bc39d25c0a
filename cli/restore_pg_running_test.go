package cli_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestCLIRestorePostgresRefusedWhileInstancesRun: a PostgreSQL database has
// no file lock to show that Caddy instances use it, and restore wrote
// under them: they went on serving from caches of what it replaced. While
// an instance listens for invalidations on the database (as every running
// one does), restore --force and migrate --force into it are refused and
// leave it as it was; once the instance is gone, the restore goes through.
// migrate --from such a database is refused too, as one from a bbolt file
// a running Caddy holds is: it copied the database while the instances
// wrote to it, and what they wrote after the snapshot was missing from
// the new store.
func TestCLIRestorePostgresRefusedWhileInstancesRun(t *testing.T) {
	dsn, db, pgStore, file := backedUpPG(t)
	before := contents(t, db)
	other := filepath.Join(t.TempDir(), "other.db")
	mustCLI(t, "restore", file, "--store=bolt:"+other)

	ctx, stop := context.WithCancel(context.Background())
	listening, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, func(inv store.Invalidation) {
			if inv.All { // subscribed
				select {
				case <-listening:
				default:
					close(listening)
				}
			}
		})
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("the instance's listener did not subscribe")
	}
	copied := filepath.Join(t.TempDir(), "copy.db")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"restore", "--force", file, pgStore}, "refusing to write"},
		{[]string{"migrate", "--force", "--from=bolt:" + other, "--to=" + strings.TrimPrefix(pgStore, "--store=")}, "refusing to write"},
		{[]string{"migrate", "--from=postgres:" + dsn, "--to=bolt:" + copied}, "refusing to read"},
	} {
		_, err := cli(context.Background(), tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "1 running Caddy instance(s) use it") ||
			!strings.Contains(err.Error(), "stop every instance") {
			t.Errorf("%s while an instance runs: %v, want it refused (%q)", strings.Join(tc.args[:2], " "), err, tc.says)
		}
	}
	if _, err := os.Stat(copied); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused migrate --from the database wrote its target: %v", err)
	}
	if got := contents(t, db); got != before {
		t.Errorf("a refused command changed the database:\n%s", storetest.FirstLineDiff(before, got, 2))
	}

	stop()
	<-done
	if out := mustCLI(t, "restore", "--force", file, pgStore); !strings.Contains(out, "restored from") {
		t.Errorf("restore once no instance runs:\n%s", out)
	}
}

// TestCLIMigrateFromHeldBoltRefused: migrate --from a bbolt file that a
// running Caddy holds is refused, saying so in migrate's words: it was
// told to use the admin API by omitting --store, which migrate does not
// have.
func TestCLIMigrateFromHeldBoltRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "src.db")
	held, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, err = cli(context.Background(), "migrate", "--from=bolt:"+path, "--to=bolt:"+filepath.Join(t.TempDir(), "copy.db"))
	if err == nil || !strings.Contains(err.Error(), "refusing to read") || !strings.Contains(err.Error(), "in use by a running Caddy") ||
		strings.Contains(err.Error(), "omit --store") {
		t.Errorf("migrate --from a held bbolt file: %v, want it refused in migrate's words", err)
	}
}
