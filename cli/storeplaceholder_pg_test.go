package cli_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestCLIStorePlaceholder: `--store 'postgres:{env.VAR}'` (and migrate's
// --from and --to) opens the database the variable names, as the
// Caddyfile's placeholder does, so that the DSN is not in the command
// line; before, it was refused as a DSN that does not parse. None of
// these commands warn about a password in the command line.
func TestCLIStorePlaceholder(t *testing.T) {
	ctx := context.Background()
	dsn, db := openPG(t)
	fillJIT(t, db, "pg-", 3, nil)
	t.Setenv("SSO_TEST_DATABASE_URL", dsn)
	const pg = "postgres:{env.SSO_TEST_DATABASE_URL}"

	srcPath := filepath.Join(t.TempDir(), "sso.db")
	src, err := bolt.Open(srcPath, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillJIT(t, src, "bolt-", 2, nil)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "list", "--store", pg}, "3 user(s)"},
		{[]string{"backup", backup, "--store", pg}, backup},
		{[]string{"migrate", "--from", pg, "--to", "bolt:" + filepath.Join(t.TempDir(), "copy.db")}, "counts match"},
		{[]string{"migrate", "--from", "bolt:" + srcPath, "--to", pg, "--force"}, "counts match"},
		{[]string{"users", "list", "--store", pg}, "2 user(s)"},
	} {
		out, err := cli(ctx, tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("caddy sso %s: %v\n%s", strings.Join(tc.args, " "), err, out)
		}
		if strings.Contains(out, "warning") {
			t.Errorf("caddy sso %s warned:\n%s", strings.Join(tc.args, " "), out)
		}
	}
}

// TestCLIStorePasswordWarning: a connection string written out on the
// command line with a password in it, which any local user can read while
// the command runs, draws a warning naming the flag and the ways to keep
// it out of the command line; it does not show the DSN, and a DSN without
// a password or a placeholder draws none. (The databases do not exist: the
// commands fail after parsing their flags, which is when they warn.)
func TestCLIStorePasswordWarning(t *testing.T) {
	t.Setenv("SSO_TEST_DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/x")
	bolt := "bolt:" + filepath.Join(t.TempDir(), "sso.db")
	for _, tc := range []struct {
		args []string
		flag string // the flag warned about; "" for none
	}{
		{[]string{"users", "list", "--store", "postgres://u:hunter2@127.0.0.1:1/x"}, "--store"},
		{[]string{"audit", "--store", "postgres:host=127.0.0.1 port=1 dbname=x user=u password=hunter2"}, "--store"},
		{[]string{"restore", "nothing.jsonl.gz", "--store", "host=127.0.0.1 port=1 dbname=x user=u password=hunter2"}, "--store"},
		{[]string{"migrate", "--from", "postgres:postgres://u:hunter2@127.0.0.1:1/x", "--to", bolt}, "--from"},
		{[]string{"migrate", "--from", bolt, "--to", "postgres://u:hunter2@127.0.0.1:1/x"}, "--to"},
		{[]string{"users", "list", "--store", "postgres:{env.SSO_TEST_DATABASE_URL}"}, ""},
		{[]string{"migrate", "--from", bolt, "--to", "postgres:{env.SSO_TEST_DATABASE_URL}"}, ""},
		{[]string{"users", "list", "--store", "postgres://u@127.0.0.1:1/x"}, ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := cli(ctx, tc.args...)
		cancel()
		name := "caddy sso " + strings.Join(tc.args, " ")
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		warned := strings.Contains(out, "other local users")
		switch {
		case tc.flag == "" && warned:
			t.Errorf("%s warned:\n%s", name, out)
		case tc.flag != "" && !strings.Contains(out, "warning: the "+tc.flag+" connection string holds a password"):
			t.Errorf("%s: no warning about %s:\n%s", name, tc.flag, out)
		}
		if strings.Contains(out+fmt.Sprint(err), "hunter2") {
			t.Errorf("%s shows the password: %v\n%s", name, err, out)
		}
	}
}
