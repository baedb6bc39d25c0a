package backend

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, backend, path, dsn string
	}{
		{"/var/lib/caddy/sso.db", Bolt, "/var/lib/caddy/sso.db", ""},
		{"bolt:./sso.db", Bolt, "./sso.db", ""},
		{"postgres:host=db user=sso password=hunter2", Postgres, "", "host=db user=sso password=hunter2"},
		{"postgres://sso:hunter2@db:5432/sso", Postgres, "", "postgres://sso:hunter2@db:5432/sso"},
	} {
		s, err := Parse(tc.in)
		if err != nil || s.Backend != tc.backend || s.Path != tc.path || s.DSN != tc.dsn {
			t.Errorf("Parse(%q) = %+v, %v", tc.in, s, err)
		}
	}
	for _, bad := range []string{"", "postgres:"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// The DSN is a secret: what names a store in messages and pool keys never
// holds its password (or any of it).
func TestSpecNeverShowsTheDSN(t *testing.T) {
	for _, dsn := range []string{"postgres://sso:hunter2@db.internal:5433/ssodb?sslmode=verify-full",
		"host=db.internal port=5433 dbname=ssodb user=sso password=hunter2", "not a dsn hunter2 ::"} {
		s := Spec{Backend: Postgres, DSN: dsn}
		key, err := s.Key()
		if err != nil {
			t.Fatal(err)
		}
		for _, shown := range []string{s.String(), key} {
			if strings.Contains(shown, "hunter2") || strings.Contains(shown, "sso:") {
				t.Errorf("%q shows the credentials of %q", shown, dsn)
			}
		}
		if strings.HasPrefix(dsn, "postgres://") && s.String() != "postgres database db.internal:5433/ssodb" {
			t.Errorf("String() = %q", s.String())
		}
	}
}
