package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
// the path needs it.
func TestSAMLKeyWrites(t *testing.T) {
	path, pemData := samlKeyStore(t)
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
	}
}
