package pgtest

import (
	"errors"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/ci"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewDatabaseIsEmptyAndSeparate(t *testing.T) {
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	for _, dsn := range []string{a, b} {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("fresh database has %d tables", n)
		}
		if _, err := conn.Exec(t.Context(), "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		conn.Close(t.Context())
	}
}

// TestUnavailableFailsUnderCI: without PostgreSQL a test skips, except
// under CI, whichever non-empty value the CI system gives CI ("true", "1",
// its name), where a run must not pass by skipping every PostgreSQL test.
func TestUnavailableFailsUnderCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{
		{"", false},
		{"false", false},
		{"true", true},
		{"1", true},
		{"woodpecker", true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			skipped, failed := ci.Outcome(t, func(t testing.TB) { Unavailable(t, errors.New("no initdb")) })
			if failed != tc.wantFail || skipped == tc.wantFail {
				t.Errorf("Unavailable: skipped=%v failed=%v, want failed=%v and the other not", skipped, failed, tc.wantFail)
			}
		})
	}
}
