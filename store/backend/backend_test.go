package backend

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/store/bolt"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, backend, path, dsn string
	}{
		{"/var/lib/caddy/sso.db", Bolt, "/var/lib/caddy/sso.db", ""},
		{"bolt:./sso.db", Bolt, "./sso.db", ""},
		{"postgres:host=db user=sso password=hunter2", Postgres, "", "host=db user=sso password=hunter2"},
		{"postgres://sso:hunter2@db:5432/sso", Postgres, "", "postgres://sso:hunter2@db:5432/sso"},
		// libpq's other URL scheme: never a bbolt file named after the DSN.
		{"postgresql://sso:hunter2@db:5432/sso", Postgres, "", "postgresql://sso:hunter2@db:5432/sso"},
		{"postgres:postgresql://sso@db/sso", Postgres, "", "postgresql://sso@db/sso"},
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

// TestParseKeyValueDSN: a libpq key=value connection string given without
// "postgres:" is PostgreSQL, or refused when it is mistyped, but never a
// bbolt path (which would show it in "no store at" messages and create a
// file named after it); a path with "=" in a file name stays a path.
func TestParseKeyValueDSN(t *testing.T) {
	for _, dsn := range []string{
		"host=/var/run/postgresql dbname=sso user=caddy_sso password=hunter2",
		"host=127.0.0.1 port=1 dbname=x user=u password=hunter2",
		"host=127.0.0.1 port=1 dbname=x user=u",
		"dbname=sso",
		"  host = db.internal\tdbname='my sso' password='hunt\\'er2 x' sslmode=verify-full ",
		"service=sso search_path=sso",
		"host=db dbname=sso pool_max_conns=10 password=",
		"host=db password=hunt\\ er2 dbname=sso", // a backslash escapes a space in an unquoted value
		"host=db\ndbname=sso\r\npassword=hunter2",
		// libpq reads the next key right after a closing quote, no white
		// space needed (psql takes these).
		"host=db password='a b'sslmode=disable",
		"dbname='sso'user='caddy'password='hunt\\'er2'",
		"password=''dbname=sso",
	} {
		s, err := Parse(dsn)
		if err != nil || s.Backend != Postgres || s.DSN != dsn || s.Path != "" {
			t.Errorf("Parse(%q) = %+v, %v; want postgres", dsn, s, err)
		}
	}
	for _, path := range []string{"sso.db", "/var/lib/caddy/sso=1.db", "./host=db",
		"a=b", "backup=2024-01-01.db", "my store.db", "data/dbname=sso.db"} {
		s, err := Parse(path)
		if err != nil || s.Backend != Bolt || s.Path != path {
			t.Errorf("Parse(%q) = %+v, %v; want a bbolt path", path, s, err)
		}
	}
	// Mistyped DSNs: refused, saying how to write one, never quoting it.
	for _, bad := range []string{
		"host=db dbname=sso user=u password=hunter2 oops",
		"dbname=sso user=caddy password='hunter2",
		"HOST=db DBNAME=sso PASSWORD=hunter2",
		"/srv/my store host=db password=hunter2",
		"/srv/host=db dbname=x", // a DSN with a stray word, or a path with spaces: ask
		"password=hunter2 =x",
		"password='hunter2'=x",         // after the quote, a key must follow (libpq: invalid connection option "")
		"HOST = db PASSWORD = hunter2", // white space around "=", as libpq allows, in capitals
		"sso.db\nPASSWORD=hunter2",     // a key after a newline starts a word too
	} {
		s, err := Parse(bad)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, s)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "hunter2") || !strings.Contains(msg, "postgres:DSN") || !strings.Contains(msg, "bolt:PATH") {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
	// The explicit prefixes still say which it is.
	if s, err := Parse("bolt:/srv/my store host=db"); err != nil || s.Backend != Bolt || s.Path != "/srv/my store host=db" {
		t.Errorf("bolt: prefix: %+v, %v", s, err)
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

// TestKeyPostgresDistinct: stores with different DSNs never share a pool:
// the key holds enough of the DSN's hash that no two of many collide.
func TestKeyPostgresDistinct(t *testing.T) {
	seen := map[string]string{}
	for i := range 500 {
		dsn := fmt.Sprintf("postgres://sso:hunter2@db%d.internal/sso", i)
		key, err := Spec{Backend: Postgres, DSN: dsn}.Key()
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[key]; ok {
			t.Fatalf("%q and %q share the key %q", other, dsn, key)
		}
		seen[key] = dsn
	}
}

// TestCheck: each backend takes only its own settings, PostgreSQL needs a
// DSN, no limit is negative, and statement_timeout is one PostgreSQL
// applies.
func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string // "" accepts
	}{
		{"default", Spec{}, ""},
		{"bolt path", Spec{Backend: Bolt, Path: "/var/lib/sso.db"}, ""},
		{"postgres", Spec{Backend: Postgres, DSN: "{env.SSO_DATABASE_URL}", MaxConns: 20, StatementTimeout: time.Second}, ""},
		{"postgres literal dsn", Spec{Backend: Postgres, DSN: "postgres://caddy@db.internal:5432/sso?sslmode=disable"}, ""},
		{"postgres malformed dsn", Spec{Backend: Postgres, DSN: "postgres://u:hunter2@db:notaport/sso"}, "the connection string (not shown"},
		{"bolt with dsn", Spec{DSN: "postgres://db/sso"}, "dsn, pool_size and statement_timeout are postgres settings"},
		{"bolt with pool size", Spec{Backend: Bolt, MaxConns: 5}, "are postgres settings"},
		{"bolt with statement timeout", Spec{Backend: Bolt, StatementTimeout: time.Second}, "are postgres settings"},
		{"postgres without dsn", Spec{Backend: Postgres}, "postgres needs a connection string (DSN)"},
		{"postgres with path", Spec{Backend: Postgres, DSN: "postgres://db/sso", Path: "/x"}, "path is a bolt setting"},
		{"negative pool size", Spec{Backend: Postgres, DSN: "postgres://db/sso", MaxConns: -1}, "must not be negative"},
		{"negative statement timeout", Spec{Backend: Postgres, DSN: "postgres://db/sso", StatementTimeout: -time.Second}, "must not be negative"},
		{"unknown backend", Spec{Backend: "sqlite"}, `unknown backend "sqlite" (expected one of: bolt, postgres)`},
		// PostgreSQL counts whole milliseconds: under 1ms would be its 0, no
		// timeout; under 1s is JSON's bare number (nanoseconds).
		{"statement timeout under 1ms", Spec{Backend: Postgres, DSN: "postgres://db/sso", StatementTimeout: 500 * time.Microsecond}, "statement_timeout 500µs must be between 1s and"},
		{"statement timeout as a JSON number", Spec{Backend: Postgres, DSN: "postgres://db/sso", StatementTimeout: 5}, "a bare number is nanoseconds"},
		// Above INT_MAX ms PostgreSQL refuses every connection at start.
		{"statement timeout above PostgreSQL's maximum", Spec{Backend: Postgres, DSN: "postgres://db/sso", StatementTimeout: 30 * 24 * time.Hour}, "PostgreSQL's maximum"},
		{"statement timeout at PostgreSQL's maximum", Spec{Backend: Postgres, DSN: "postgres://db/sso", StatementTimeout: MaxStatementTimeout}, ""},
		{"statement timeout of a millisecond", Spec{Backend: Postgres, DSN: "postgres://db/sso", StatementTimeout: time.Millisecond}, "must be between 1s and"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Check(func(dsn string) bool { return strings.Contains(dsn, "{") })
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the DSN's password", err)
			}
		})
	}
}

// TestCheckWithoutDeferred: with no placeholder rule, every DSN is parsed
// as Open parses it.
func TestCheckWithoutDeferred(t *testing.T) {
	if err := (Spec{Backend: Postgres, DSN: "postgres://caddy@db.internal:5432/sso"}).Check(nil); err != nil {
		t.Errorf("a literal DSN: %v", err)
	}
	for _, dsn := range []string{"postgres://u:hunter2@db:notaport/sso", "{env.SSO_DATABASE_URL}"} {
		err := Spec{Backend: Postgres, DSN: dsn}.Check(nil)
		if err == nil || !strings.Contains(err.Error(), "does not parse") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Check(nil) of %q: %v, want it refused unshown", dsn, err)
		}
	}
}

// TestSlowWrites logs the writes that held the lock SlowWriteThreshold or
// longer, with where the time went, naming the store without its DSN's
// secrets.
func TestSlowWrites(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	onWrite := SlowWrites(Spec{Backend: Postgres, DSN: "postgres://sso:hunter2@db.internal/ssodb"}, zap.New(core))
	for _, held := range []time.Duration{time.Millisecond, SlowWriteThreshold - 1, SlowWriteThreshold, time.Second} {
		onWrite(bolt.WriteHold{Held: held, Work: held / 10, Disk: held / 2, Pages: 34, Faults: 5, Calls: 3, Background: true})
	}
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("logged %d writes, want the 2 at or over %v", len(entries), SlowWriteThreshold)
	}
	for _, e := range entries {
		fields := e.ContextMap()
		held := fields["held"].(time.Duration)
		if e.Level != zapcore.WarnLevel || held < SlowWriteThreshold || fields["work"] != held/10 ||
			fields["disk"] != held/2 || fields["pages"] != int64(34) || fields["faults"] != int64(5) || fields["calls"] != int64(3) ||
			fields["background"] != true {
			t.Errorf("logged %v %v", e.Level, fields)
		}
		if store := fields["store"].(string); strings.Contains(store, "hunter2") || !strings.Contains(store, "db.internal") {
			t.Errorf("store named %q", store)
		}
	}
}
