package cli_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestRestoreHolderProcess is the child of TestRestoreRefusesStoreHeldByAnotherProcess:
// it opens the bbolt store SSO_TEST_HOLD_STORE as a running Caddy does
// (read-write) or, with SSO_TEST_HOLD_READONLY set, as a reading command
// does, says so, and holds it until it is killed.
func TestRestoreHolderProcess(t *testing.T) {
	path := os.Getenv("SSO_TEST_HOLD_STORE")
	if path == "" {
		t.Skip("the child process of TestRestoreRefusesStoreHeldByAnotherProcess")
	}
	db, err := bolt.Open(path, bolt.Options{ReadOnly: os.Getenv("SSO_TEST_HOLD_READONLY") != ""})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, _ = os.Stdout.WriteString("holding\n")
	select {}
}

// A restore into a bbolt file that another process has open is refused,
// and the file is left as it is, whoever holds it: a process writing it
// (a Caddy, whose admin endpoint restore need not know) or one reading it
// (audit --follow --store, which shares the read-only lock restore's first
// check takes, and would go on following the replaced file). Once the
// holder has ended, the same restore goes through.
func TestRestoreRefusesStoreHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	path, backup := filepath.Join(dir, "sso.db"), filepath.Join(dir, "b.jsonl.gz")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "backup", "--store", path, backup)
	holder := func(env ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreHolderProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(append(os.Environ(), "SSO_TEST_HOLD_STORE="+path), env...)
		return cmd
	}
	for _, tc := range []struct {
		name   string
		holder *exec.Cmd
	}{
		{"writer, as a running Caddy", holder()},
		{"reader", holder("SSO_TEST_HOLD_READONLY=1")},
		{"caddy sso audit --follow --store", childCommand(os.Args[0], nil, "audit", "--follow", "--store", path)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			startHolding(t, tc.holder, path)
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cli(context.Background(), "restore", "--store", path, backup)
			for _, want := range []string{"refusing to replace " + path, "in use by a running Caddy", "stop that Caddy (its service, or caddy stop",
				"or let the caddy sso command given --store " + path + " end", "then run the same command again"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("restore into a held store: %v, want an error with %q\n%s", err, want, out)
				}
			}
			if after, err := os.Stat(path); err != nil || !os.SameFile(before, after) {
				t.Errorf("restore replaced the held store (%v)", err)
			}
			stopHolding(t, tc.holder)
			mustCLI(t, "restore", "--store", path, backup)
			if after, err := os.Stat(path); err != nil || os.SameFile(before, after) {
				t.Errorf("restore did not replace the store once its holder ended (%v)", err)
			}
		})
	}
}

// startHolding starts cmd and waits until it holds the bbolt file at path:
// a lock on it is refused.
func startHolding(t *testing.T, cmd *exec.Cmd, path string) {
	t.Helper()
	var out bytes.Buffer // read once the holder has ended
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopHolding(t, cmd) })
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return
		}
		if err == nil {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		if time.Now().After(deadline) {
			stopHolding(t, cmd)
			t.Fatalf("the holder did not lock %s: %v\n%s", path, err, cmd.Stdout)
		}
	}
}

// stopHolding kills cmd and waits for it: the kernel then drops its lock.
func stopHolding(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// A Caddy whose admin endpoint is not at the default address, running on
// the default store: restore with neither --store nor --address finds no
// Caddy to ask, and is refused by the store's lock instead of renaming a
// new file over the one that Caddy writes to.
func TestRestoreRefusesDefaultStoreOfCaddyAtOtherAdminAddress(t *testing.T) {
	if c, err := net.DialTimeout("tcp", "localhost:2019", time.Second); err == nil {
		_ = c.Close()
		t.Skip("something answers at the default admin address, localhost:2019, which restore asks first")
	}
	t.Setenv("XDG_DATA_HOME", t.TempDir()) // where Caddy and restore find the default store
	w := caddytest.NewOIDC(t, "\t\t\tjit\n")
	w.GW.Start("{\n" + w.GW.GlobalOptions() + "\tsso {\n" + w.IdPConfig() + "\t}\n}\n\n" + w.Sites)
	backup := filepath.Join(t.TempDir(), "b.jsonl.gz")
	mustCLI(t, "backup", w.GW.AddressFlag(), backup)
	path := filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy", "sso", "sso.db")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the running Caddy's default store: %v", err)
	}
	out, err := cli(context.Background(), "restore", backup)
	if err == nil || !strings.Contains(err.Error(), "refusing to replace "+path+": it is in use by a running Caddy") {
		t.Errorf("restore into the default store of a running Caddy: %v\n%s", err, out)
	}
	if after, err := os.Stat(path); err != nil || !os.SameFile(before, after) {
		t.Errorf("restore replaced the running Caddy's store (%v)", err)
	}
}

// A bbolt file restored into itself: opened as the backup, it holds the
// lock restore's check asks for, and would be refused as in use by another
// process; the refusal says what it is instead, and leaves the file.
func TestRestoreOfTheStoreIntoItself(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cli(context.Background(), "restore", "--store", "bolt:"+path, path)
	if err == nil || !strings.Contains(err.Error(), "the backup "+path+" is the store itself: restore a backup of it") {
		t.Errorf("restore of a store into itself: %v\n%s", err, out)
	}
	if after, err := os.Stat(path); err != nil || !os.SameFile(before, after) {
		t.Errorf("restore replaced the store (%v)", err)
	}
}
