package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// newBoltStore makes an empty bbolt store at dir/name.
func newBoltStore(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// A migrate whose --from and --to name one bbolt file, however spelled, is
// refused before either is opened, with or without --force: with --force
// it would otherwise copy the store onto itself, and without it fail later
// on the file's lock with a message about a running Caddy.
func TestMigrateIntoItselfRefused(t *testing.T) {
	dir := t.TempDir()
	path := newBoltStore(t, dir, "sso.db")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, ".", "sub", "..", "sso.db")
	for _, args := range [][]string{
		{"migrate", "--from", "bolt:" + path, "--to", "bolt:" + path},
		{"migrate", "--from", "bolt:" + path, "--to", "bolt:" + other},
		{"migrate", "--force", "--from", "bolt:" + path, "--to", "bolt:" + other},
	} {
		out, err := cli(context.Background(), args...)
		if err == nil || !strings.Contains(err.Error(), "--from and --to are the same store") {
			t.Errorf("%v: %v, want the same store refused\n%s", args, err, out)
		}
		if after, err := os.Stat(path); err != nil || !os.SameFile(before, after) {
			t.Errorf("%v replaced the store (%v)", args, err)
		}
	}
}

// restore into PostgreSQL says "replacing everything in <store>" only with
// --force: a restore into an empty database replaces nothing, and the line
// would alarm. (A bbolt target is a new file swapped in, and never says it.)
func TestRestoreSaysReplacingOnlyWithForce(t *testing.T) {
	dir := t.TempDir()
	src := newBoltStore(t, dir, "src.db")
	backup := filepath.Join(dir, "b.jsonl")
	mustCLI(t, "backup", "--store", "bolt:"+src, backup)
	for _, force := range []bool{false, true} {
		dsn, _ := openPG(t)
		args := []string{"restore", "--store=postgres:" + dsn, backup}
		if force {
			args = append(args, "--force")
		}
		out := mustCLI(t, args...)
		if got := strings.Contains(out, "replacing everything in postgres database"); got != force {
			t.Errorf("restore --force=%v said %q: %v\n%s", force, "replacing everything in", got, out)
		}
	}
}
