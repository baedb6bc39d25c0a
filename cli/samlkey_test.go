package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// samlKeyStore is a stopped store holding a generated SP key pair for IdP
// "test" and a damaged one for IdP "bad".
func samlKeyStore(t *testing.T) (path string, pemData []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "sso.db")
	kp, err := saml.GenerateKeyPair("test")
	if err != nil {
		t.Fatal(err)
	}
	if pemData, err = saml.EncodeKeyPairPEM(kp); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.LoadOrStoreSecret(saml.SPKeySecretName("test"), pemData); err != nil {
			return err
		}
		_, err := tx.LoadOrStoreSecret(saml.SPKeySecretName("bad"), []byte("not PEM"))
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path, pemData
}

// TestSAMLKeyRefusals: saml-key writes a key file only from a sound key,
// only to a new file (never over another, which may be a key in use), and
// says what is missing otherwise.
func TestSAMLKeyRefusals(t *testing.T) {
	path, _ := samlKeyStore(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "in-use.pem")
	if err := os.WriteFile(existing, []byte("the key in use"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --out", []string{"saml-key", "test", "--store", path}, "--out names the file to write the key pair to"},
		{"no --store", []string{"saml-key", "test", "--out", filepath.Join(dir, "a.pem")}, "saml-key reads the store itself: give --store"},
		{"no key for the IdP", []string{"saml-key", "other", "--out", filepath.Join(dir, "b.pem"), "--store", path},
			`the store holds no generated SP key for IdP "other"`},
		{"a damaged key", []string{"saml-key", "bad", "--out", filepath.Join(dir, "c.pem"), "--store", path},
			`the SP key of IdP "bad" in the store`},
		{"an existing file", []string{"saml-key", "test", "--out", existing, "--store", path}, "file exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := run(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want an error with %q\n%s%s", tc.args, err, tc.want, stdout, stderr)
			}
		})
	}
	if got, err := os.ReadFile(existing); err != nil || string(got) != "the key in use" {
		t.Errorf("saml-key changed %s, an existing file: %q (%v)", existing, got, err)
	}
	for _, name := range []string{"a.pem", "b.pem", "c.pem"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			t.Errorf("a refused saml-key wrote %s", name)
		}
	}
}

// TestSAMLKeyWrites: the key file holds the store's PEM, mode 0600, and the
// sp_cert line printed is one Caddyfile token per file, quoted only when
// the path needs it. The store is only read: its file is left as it was
// (a store restored from a backup to take the key from may be kept).
func TestSAMLKeyWrites(t *testing.T) {
	path, pemData := samlKeyStore(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct{ file, arg string }{
		{filepath.Join(dir, "sp.pem"), filepath.Join(dir, "sp.pem")},
		{filepath.Join(dir, "my key.pem"), `"` + filepath.Join(dir, "my key.pem") + `"`},
		{filepath.Join(dir, "k{1}.pem"), `"` + filepath.Join(dir, "k{1}.pem") + `"`},
	} {
		stdout, stderr, err := run("saml-key", "test", "--out", tc.file, "--store", path)
		if err != nil {
			t.Fatalf("saml-key --out %s: %v\n%s", tc.file, err, stderr)
		}
		if want := "  sp_cert " + tc.arg + " " + tc.arg + "\n"; !strings.Contains(stdout, want) {
			t.Errorf("saml-key --out %s printed %q, want %q", tc.file, stdout, want)
		}
		got, err := os.ReadFile(tc.file)
		if err != nil || !bytes.Equal(got, pemData) {
			t.Errorf("%s does not hold the store's key pair (%v)", tc.file, err)
		}
		if fi, err := os.Stat(tc.file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", tc.file, fi.Mode().Perm(), err)
		}
		if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
			t.Errorf("saml-key --out %s changed the store file it read (%v)", tc.file, err)
		}
	}
	// --json gives the same Caddyfile line, quoted alike for both files.
	file := filepath.Join(dir, "json key.pem")
	stdout, stderr, err := run("saml-key", "test", "--out", file, "--store", path, "--json")
	var got struct {
		File   string `json:"file"`
		SPCert string `json:"sp_cert"`
	}
	if err != nil || json.Unmarshal([]byte(stdout), &got) != nil {
		t.Fatalf("saml-key --json: %v\n%s%s", err, stdout, stderr)
	}
	if arg := strconv.Quote(file); got.File != file || got.SPCert != "sp_cert "+arg+" "+arg {
		t.Errorf("saml-key --json --out %q = %s, want file and the sp_cert line %q", file, stdout, "sp_cert "+arg+" "+arg)
	}
}

// TestSAMLKeyWriteFailureLeavesNoFile: a key file saml-key could not write
// whole (here: the file size limit, as a full disk would) is removed, and
// the command fails: no half key file is left under the name the operator
// would configure.
func TestSAMLKeyWriteFailureLeavesNoFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("ulimit -f is a unix shell's")
	}
	path, pemData := samlKeyStore(t)
	if len(pemData) <= 1024 {
		t.Fatalf("a key pair of %d bytes fits in the 1 KiB limit", len(pemData))
	}
	out := filepath.Join(t.TempDir(), "sp.pem")
	// The child is TestDurableCommandProcess (durable_test.go), under a
	// file size limit of 1 KiB: its writes past that fail with EFBIG (Go
	// ignores SIGXFSZ).
	cmd := exec.Command("sh", "-c", `ulimit -f 1 && exec "$0" "$@"`, os.Args[0], "-test.run=^TestDurableCommandProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSO_TEST_DURABLE_ARGS="+strings.Join([]string{"saml-key", "test", "--out", out, "--store", path}, "\x1f"))
	got, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(got), "DURABLE-DONE") || !strings.Contains(string(got), "file too large") {
		t.Fatalf("saml-key under a 1 KiB file size limit: %v, want it to fail writing\n%s", err, got)
	}
	if fi, err := os.Lstat(out); err == nil {
		t.Errorf("a failed saml-key left %s (%d bytes)", out, fi.Size())
	}
}
