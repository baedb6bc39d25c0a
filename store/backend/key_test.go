package backend

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store/postgres"
)

// TestKeyPostgresSettings: a reload shares the running pool only when
// Open would set it up the same way; a changed pool_size or
// statement_timeout opens a new one, instead of applying only after a
// restart. A setting left to its default and the default written out are
// the same pool.
func TestKeyPostgresSettings(t *testing.T) {
	const dsn = "postgres://sso:hunter2@db.internal/sso"
	pg := func(dsn string, conns int32, timeout time.Duration) Spec {
		return Spec{Backend: Postgres, DSN: dsn, MaxConns: conns, StatementTimeout: timeout}
	}
	for _, tc := range []struct {
		name string
		a, b Spec
		same bool
	}{
		{"equal settings", pg(dsn, 20, 3*time.Second), pg(dsn, 20, 3*time.Second), true},
		{"defaults", pg(dsn, 0, 0), pg(dsn, 0, 0), true},
		{"default written out", pg(dsn, 0, 0), pg(dsn, postgres.DefaultMaxConns, postgres.DefaultStatementTimeout), true},
		{"pool_size differs", pg(dsn, 10, 5*time.Second), pg(dsn, 20, 5*time.Second), false},
		{"pool_size set", pg(dsn, 0, 0), pg(dsn, postgres.DefaultMaxConns+1, 0), false},
		{"statement_timeout differs", pg(dsn, 10, 5*time.Second), pg(dsn, 10, 30*time.Second), false},
		{"statement_timeout set", pg(dsn, 0, 0), pg(dsn, 0, postgres.DefaultStatementTimeout+time.Second), false},
		{"dsn differs", pg(dsn, 10, 5*time.Second), pg(dsn+"2", 10, 5*time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka, err := tc.a.Key()
			if err != nil {
				t.Fatal(err)
			}
			kb, err := tc.b.Key()
			if err != nil {
				t.Fatal(err)
			}
			if (ka == kb) != tc.same {
				t.Errorf("keys %q and %q: same = %v, want %v", ka, kb, ka == kb, tc.same)
			}
		})
	}
}

// TestKeyBoltSymlinks: a path naming the open bbolt file another way
// (through a symlinked directory, a link to the file, a working directory
// reached through a link, ".." after a link) has the running file's key,
// so a reload shares its handle instead of waiting for its own lock; and
// so has a file not yet created in a symlinked directory.
func TestKeyBoltSymlinks(t *testing.T) {
	base := t.TempDir()
	realDir := filepath.Join(base, "real")
	deep := filepath.Join(base, "other", "deep")
	for _, d := range []string{realDir, deep} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(realDir, "sso.db")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"dirlink": realDir, "filelink.db": file, "deeplink": deep} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Skipf("no symbolic links here: %v", err)
		}
	}
	for _, tc := range []struct {
		name, path, want string
		chdir            string // the working directory, if not the test's
	}{
		{"symlinked directory", filepath.Join(base, "dirlink", "sso.db"), file, ""},
		{"link to the file", filepath.Join(base, "filelink.db"), file, ""},
		{"relative in a symlinked working directory", "sso.db", file, filepath.Join(base, "dirlink")},
		{"dot-dot after a link", filepath.Join(base, "deeplink") + "/../../real/sso.db", file, ""},
		{"relative dot-dot in a symlinked working directory", "../../real/sso.db", file, filepath.Join(base, "deeplink")},
		{"new file in a symlinked directory", filepath.Join(base, "dirlink", "new.db"), filepath.Join(realDir, "new.db"), ""},
		{"new directory in a symlinked directory", filepath.Join(base, "dirlink", "sub", "new.db"), filepath.Join(realDir, "sub", "new.db"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := Spec{Backend: Bolt, Path: tc.want}.Key()
			if err != nil {
				t.Fatal(err)
			}
			if tc.chdir != "" {
				t.Chdir(tc.chdir)
			}
			got, err := Spec{Backend: Bolt, Path: tc.path}.Key()
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Key(%q) = %q, want %q, the key of %q", tc.path, got, want, tc.want)
			}
		})
	}
	// A path that cannot be resolved (a part of it is a file) is taken as
	// written, made absolute: Open reports what is wrong with it.
	path := filepath.Join(file, "x.db")
	if got, err := (Spec{Backend: Bolt, Path: path}).Key(); err != nil || got != Bolt+":"+path {
		t.Errorf("Key(%q) = %q, %v; want the path", path, got, err)
	}
}
