package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// emptyBackup writes a portable backup of an empty store and returns its
// path and the path of that store (dir/src.db).
func emptyBackup(t *testing.T) (file, src string) {
	t.Helper()
	dir := t.TempDir()
	file = filepath.Join(dir, "sso.jsonl.gz")
	if _, _, err := writeBackup(context.Background(), backupOfEmptyStore{dir: dir}, file, nil); err != nil {
		t.Fatal(err)
	}
	return file, filepath.Join(dir, "src.db")
}

// runCLI runs `caddy sso args` in this process.
func runCLI(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := NewCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestReplaceRefusedWhileAnotherRuns: a restore into a bbolt store while
// another restore into it is building its new file. Both used to build it
// under one name: the second unlinked the file the first was filling, the
// first renamed the second's into place and reported its backup restored,
// and the store held the other backup (or a part of it). Now the second
// is refused, naming what runs, and so is a migrate, with --force or into
// a new file beside the store (which it does not create); the first
// completes.
func TestReplaceRefusedWhileAnotherRuns(t *testing.T) {
	file, src := emptyBackup(t)
	path := filepath.Join(t.TempDir(), "sso.db")
	beside := filepath.Join(filepath.Dir(path), "new.db")
	filling, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := replaceBoltFile(context.Background(), path, "restore", io.Discard, func(store.Store) error {
			close(filling)
			<-release
			return nil
		}, func(store.Store, oldStore) error { return nil })
		first <- err
	}()
	select {
	case <-filling:
	case err := <-first:
		t.Fatalf("the first restore ended before filling: %v", err)
	}
	for _, args := range [][]string{
		{"restore", "--store", path, file},
		{"migrate", "--force", "--from", "bolt:" + src, "--to", "bolt:" + path},
		{"migrate", "--from", "bolt:" + src, "--to", "bolt:" + beside},
	} {
		out, err := runCLI(args...)
		if err == nil || !strings.Contains(err.Error(), "another restore or migrate into a store in its directory is running") {
			t.Errorf("%s while a restore into the store runs: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := os.Lstat(beside); err == nil {
		t.Errorf("the refused migrate created %s", beside)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the first restore: %v", err)
	}
	if _, err := runCLI("users", "list", "--store", path); err != nil {
		t.Errorf("the store the first restore wrote: %v", err)
	}
	// Done, it no longer holds the lock.
	if out, err := runCLI("restore", "--store", path, file); err != nil {
		t.Errorf("a restore after the first finished: %v\n%s", err, out)
	}
}

// TestReplaceLeavesOthersFilesAlone: a restore builds its store in a
// directory it creates, never in a file found beside the store. A file at
// the name it used to build under (.sso.db.restore), which it removed and
// then opened (in a shared directory, another user's file, which it could
// not remove, received every key), stays as it was. What a killed restore
// or migration of this user left for this store is removed; another
// store's is not.
func TestReplaceLeavesOthersFilesAlone(t *testing.T) {
	file, _ := emptyBackup(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sso.db")
	planted := filepath.Join(dir, ".sso.db.restore")
	db, err := bolt.Open(planted, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(planted)
	if err != nil {
		t.Fatal(err)
	}
	stale := []string{filepath.Join(dir, ".sso.db.restore-123"), filepath.Join(dir, ".sso.db.migrate-456")}
	other := filepath.Join(dir, ".other.db.restore-789")
	for _, d := range append(stale, other) {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sso.db"), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	if out, err := runCLI("restore", "--store", path, file); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if after, err := os.ReadFile(planted); err != nil || !bytes.Equal(after, before) {
		t.Errorf("restore changed or removed %s, a file it did not create (%v)", planted, err)
	}
	for _, d := range stale {
		if _, err := os.Lstat(d); err == nil {
			t.Errorf("restore left %s, what an interrupted run left", d)
		}
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("restore into sso.db removed another store's %s: %v", other, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".sso.db.restore-") {
			t.Errorf("restore left its directory %s", e.Name())
		}
	}
}
