package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIStoreFlagNeverShowsTheDSN: a --store that is (or may be) a
// PostgreSQL connection string is never echoed, in the output or in the
// error, whichever way it is spelled: a key=value DSN without "postgres:"
// is PostgreSQL, not a bbolt file named after it, and a store that cannot
// be reached is named by host and database only.
func TestCLIStoreFlagNeverShowsTheDSN(t *testing.T) {
	t.Chdir(t.TempDir()) // a DSN misread as a path would create a file here
	for _, store := range []string{
		"host=127.0.0.1 port=1 dbname=x user=u password=hunter2",
		"postgres:host=127.0.0.1 port=1 dbname=x user=u password=hunter2",
		"postgres:postgres://u:hunter2@127.0.0.1:1/x",
		"postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=5",
		"host=127.0.0.1 port=1 dbname=x user=u password=hunter2 oops", // mistyped: refused
	} {
		for _, args := range [][]string{
			{"users", "list", "--store", store},
			{"users", "show", "someone", "--store", store, "--json"},
			{"audit", "--store", store},
			{"check", "--store", store},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := cli(ctx, args...)
			cancel()
			if err == nil {
				t.Errorf("caddy sso %s: no error\n%s", strings.Join(args, " "), out)
				continue
			}
			t.Logf("caddy sso %s: %v", args[0], err)
			if strings.Contains(out+err.Error(), "hunter2") {
				t.Errorf("caddy sso %s shows the password: %v\n%s", strings.Join(args, " "), err, out)
			}
			if !strings.Contains(store, "oops") && !strings.Contains(err.Error(), "127.0.0.1") && !strings.Contains(err.Error(), "only bbolt") {
				t.Errorf("caddy sso %s: %v; want the host named", strings.Join(args, " "), err)
			}
			if strings.Contains(err.Error(), "no store at") {
				t.Errorf("caddy sso %s took the DSN for a file: %v", strings.Join(args, " "), err)
			}
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) > 0 {
		t.Errorf("created %s", filepath.Join(".", entries[0].Name()))
	}
}
