package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestCLICheckStore: `caddy sso check --store` passes a store a real Caddy
// wrote, refuses one a running Caddy holds, and on damaged copies exits
// non-zero naming what is wrong, without changing the file.
func TestCLICheckStore(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	caddytest.UpstreamSaw(t, caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	ada := caddytest.UserBySubject(t, "sub-ada")
	caddytest.AddUsers(t, 3, "other.example")
	good := w.GW.StorePath()
	if out, err := cli(context.Background(), "check", "--store", good); err == nil ||
		!strings.Contains(err.Error(), "in use by a running Caddy") || !strings.Contains(err.Error(), "--running") {
		t.Errorf("check of a running store's file: %v\n%s", err, out)
	}
	// The running Caddy checks its own store, in a read transaction.
	out := mustCLI(t, "check", "--running", w.GW.AddressFlag())
	for _, want := range []string{good, "4 user(s)", "1 session(s)", "✓"} {
		if !strings.Contains(out, want) {
			t.Errorf("check --running lacks %q:\n%s", want, out)
		}
	}
	w.GW.Stop()
	if _, err := cli(context.Background(), "check", "--running", w.GW.AddressFlag()); err == nil ||
		!strings.Contains(err.Error(), "cannot reach") && !strings.Contains(err.Error(), "not running") {
		t.Errorf("check --running with the sso app stopped: %v", err)
	}

	for _, spec := range []string{good, "bolt:" + good} {
		out = mustCLI(t, "check", "--store", spec)
		for _, want := range []string{good, "4 user(s)", "1 session(s)", "✓"} {
			if !strings.Contains(out, want) {
				t.Errorf("check --store %s lacks %q:\n%s", spec, want, out)
			}
		}
	}
	if _, err := cli(context.Background(), "check", "--store", "postgres:postgres://127.0.0.1:1/sso"); err == nil || !strings.Contains(err.Error(), "only bbolt stores") {
		t.Errorf("check --store postgres: %v", err)
	}
	var report struct {
		OK    bool
		Users int
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "check", "--store", good, "--json")), &report); err != nil || !report.OK || report.Users != 4 {
		t.Errorf("check --json = %+v (%v)", report, err)
	}

	for _, args := range [][]string{{"--store", good, "--config", "Caddyfile"}, {"--store", good, "--running"}} {
		if _, err := cli(context.Background(), append([]string{"check"}, args...)...); err == nil || !strings.Contains(err.Error(), "give one of") {
			t.Errorf("check %v: %v", args, err)
		}
	}

	// edit copies the sound store and changes it with raw bbolt writes,
	// as a bug or a bad restore could.
	edit := func(t *testing.T, fn func(tx *bbolt.Tx) error) string {
		t.Helper()
		path := copyFile(t, good)
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		file func(t *testing.T) string
		want []string
	}{
		{"record deleted under its indexes", func(t *testing.T) string {
			return edit(t, func(tx *bbolt.Tx) error { return tx.Bucket([]byte("users")).Delete([]byte(ada.ID)) })
		}, []string{"points at user \"" + ada.ID + "\", which does not exist", "belongs to user " + ada.ID + ", who does not exist"}},
		{"index entry without its record", func(t *testing.T) string {
			return edit(t, func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte("emails")).Put([]byte("ghost@example.com"), []byte("no-such-user"))
			})
		}, []string{`emails: entry "ghost@example.com" points at user "no-such-user", which does not exist`}},
		{"index entry removed", func(t *testing.T) string {
			return edit(t, func(tx *bbolt.Tx) error { return tx.Bucket([]byte("emails")).Delete([]byte("ada@example.com")) })
		}, []string{`no email entry "ada@example.com" for ` + ada.ID}},
		{"truncated", func(t *testing.T) string {
			path := copyFile(t, good)
			// Half of the data: the file runs on past it, since bbolt
			// grows a file ahead of what it holds.
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var size int64
			_ = db.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil })
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, size/2); err != nil {
				t.Fatal(err)
			}
			return path
		}, []string{"is damaged", "truncated", "caddy sso restore"}},
		{"pages overwritten", func(t *testing.T) string {
			path := copyFile(t, good)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every page after the two meta pages: the header stays valid,
			// so only reading the data finds the damage.
			for i := 2 * 4096; i < len(data); i++ {
				data[i] = byte(i*7 + 3)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, []string{"is damaged", "caddy sso restore"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.file(t)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cli(context.Background(), "check", "--store", path)
			if err == nil {
				t.Fatalf("check passed a damaged store:\n%s", out)
			}
			all := out + err.Error()
			for _, want := range append(tt.want, path) {
				if !strings.Contains(all, want) {
					t.Errorf("check output lacks %q:\n%s", want, all)
				}
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("check changed the file")
			}
		})
	}
}

func copyFile(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}
