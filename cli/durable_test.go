package cli_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/stracetest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestDurableCommandProcess runs the command in SSO_TEST_DURABLE_ARGS (its
// arguments split on \x1f) for the tests below to trace, and then writes
// "DURABLE-DONE" to stdout: what the operator reads as "done".
func TestDurableCommandProcess(t *testing.T) {
	raw := os.Getenv("SSO_TEST_DURABLE_ARGS")
	if raw == "" {
		t.Skip("the child process of the durability tests (TestSAMLKeyOutIsDurable …)")
	}
	_, errOut, err := run(strings.Split(raw, "\x1f")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	_, _ = os.Stdout.WriteString("DURABLE-DONE\n")
}

// commandTrace is the system calls of one command run under strace.
type commandTrace []string

// traceCommand runs `caddy sso args` in a child process under strace. A
// power cut cannot be shown by killing a process, so these tests read
// which files and directories were fsynced before the command said done.
func traceCommand(t *testing.T, args ...string) commandTrace {
	t.Helper()
	stracetest.Require(t)
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command("strace", "-f", "-qq", "-e", "trace=openat,fsync,fdatasync,write,close", "-e", "signal=none",
		"-s", "40", "-o", trace, os.Args[0], "-test.run=^TestDurableCommandProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSO_TEST_DURABLE_ARGS="+strings.Join(args, "\x1f"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("under strace: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	return stracetest.Lines(string(raw))
}

var (
	traceOpened = regexp.MustCompile(`openat\(AT_FDCWD, "([^"]*)", [^)]*\) = (\d+)`)
	traceSynced = regexp.MustCompile(`f(?:data)?sync\((\d+)\)\s+= 0`)
	traceClosed = regexp.MustCompile(`close\((\d+)\)`)
)

// syncedBeforeDone reports whether path was fsynced, through a descriptor
// opened on it, before the command said done; it fails the test when the
// command never did.
func (tr commandTrace) syncedBeforeDone(t *testing.T, path string) bool {
	t.Helper()
	fds := map[string]bool{}
	synced := false
	for _, line := range tr {
		switch m := traceOpened.FindStringSubmatch(line); {
		case m != nil:
			fds[m[2]] = filepath.Clean(m[1]) == filepath.Clean(path)
		case strings.Contains(line, `write(1, "DURABLE-DONE`):
			return synced
		}
		if m := traceSynced.FindStringSubmatch(line); m != nil && fds[m[1]] {
			synced = true
		}
		if m := traceClosed.FindStringSubmatch(line); m != nil {
			delete(fds, m[1])
		}
	}
	t.Fatalf("the command never said done:\n%s", strings.Join(tr, "\n"))
	return false
}

// TestSAMLKeyOutIsDurable: `caddy sso saml-key --out FILE` says it wrote
// the key pair and how to configure it. A power cut after that must not
// leave an empty or missing key file that the operator has configured (and
// perhaps the store it came from discarded): the file and its directory
// are fsynced first, as a backup's are.
func TestSAMLKeyOutIsDurable(t *testing.T) {
	path, _, _ := stoppedStore(t)
	kp, err := saml.GenerateKeyPair("test")
	if err != nil {
		t.Fatal(err)
	}
	pemData, err := saml.EncodeKeyPairPEM(kp)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret(saml.SPKeySecretName("test"), pemData)
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "sp.pem")
	tr := traceCommand(t, "saml-key", "test", "--out", out, "--store", path)
	if !tr.syncedBeforeDone(t, out) {
		t.Errorf("saml-key said it wrote %s without fsyncing it: a power cut can leave it empty", out)
	}
	if !tr.syncedBeforeDone(t, outDir) {
		t.Errorf("saml-key created %s without fsyncing %s: a power cut can lose its name", out, outDir)
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != string(pemData) {
		t.Errorf("the key file holds %d bytes (%v), want the store's key pair", len(got), err)
	}
}

// TestMigrateToNewBoltFileIsDurable: `caddy sso migrate --to bolt:NEW`
// (no --force, in directories that do not exist yet) creates the store in
// place and says "copied". Its commits are fsynced, and so is each
// directory that got a new name: the file's, and the one that holds the
// directory created for it.
func TestMigrateToNewBoltFileIsDurable(t *testing.T) {
	src, _, _ := stoppedStore(t)
	top := t.TempDir()
	dstDir := filepath.Join(top, "new")
	dst := filepath.Join(dstDir, "sso.db")
	tr := traceCommand(t, "migrate", "--from", "bolt:"+src, "--to", "bolt:"+dst)
	if !tr.syncedBeforeDone(t, dst) {
		t.Errorf("migrate said copied without fsyncing %s", dst)
	}
	for _, dir := range []string{dstDir, top} {
		if !tr.syncedBeforeDone(t, dir) {
			t.Errorf("migrate created %s and said copied without fsyncing %s: a power cut can lose the new store's name", dst, dir)
		}
	}
}
