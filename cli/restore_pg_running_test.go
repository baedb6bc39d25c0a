package cli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestCLIRestorePostgresRefusedWhileInstancesRun: a PostgreSQL database has
// no file lock to show that Caddy instances use it, and restore wrote
// under them: they went on serving from caches of what it replaced. While
// an instance listens for invalidations on the database (as every running
// one does), restore --force and migrate --force into it are refused and
// leave it as it was; once the instance is gone, the restore goes through.
func TestCLIRestorePostgresRefusedWhileInstancesRun(t *testing.T) {
	_, db, pgStore, file := backedUpPG(t)
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
	for _, args := range [][]string{
		{"restore", "--force", file, pgStore},
		{"migrate", "--force", "--from=bolt:" + other, "--to=" + strings.TrimPrefix(pgStore, "--store=")},
	} {
		_, err := cli(context.Background(), args...)
		if err == nil || !strings.Contains(err.Error(), "1 running Caddy instance(s) use it") || !strings.Contains(err.Error(), "stop every instance") {
			t.Errorf("%s while an instance runs: %v, want it refused", args[0], err)
		}
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
