package cli

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store/backend"
)

// TestParseStorePlaceholder: a store argument written with the
// Caddyfile's placeholder ({env.NAME}) names the same store as the
// connection string the variable holds written out, so that the DSN need
// not be in the command line (where other local users read it); literal
// braces Caddy does not know are left alone. The warning about a password
// in the command line comes for a literal one only, never shows it, and
// names the flag.
func TestParseStorePlaceholder(t *testing.T) {
	const (
		url = "postgres://caddy:hunter2@db.example:5432/sso?sslmode=disable"
		kv  = "host=db.example dbname=sso user=caddy password=hunter2"
	)
	t.Setenv("SSO_TEST_URL", url)
	t.Setenv("SSO_TEST_KV", kv)
	t.Setenv("SSO_TEST_PW", "hunter2")
	t.Setenv("SSO_TEST_DIR", "/var/lib/sso-test")
	for _, tc := range []struct {
		raw, literal string
		warn         bool
	}{
		{"postgres:{env.SSO_TEST_URL}", "postgres:" + url, false},
		{"{env.SSO_TEST_URL}", url, false},
		{"postgres:{env.SSO_TEST_KV}", "postgres:" + kv, false},
		{"{env.SSO_TEST_KV}", kv, false},
		{"postgres://caddy:{env.SSO_TEST_PW}@db.example/sso", "postgres://caddy:hunter2@db.example/sso", false},
		{"postgres:host=db.example user=caddy password={env.SSO_TEST_PW}", "postgres:host=db.example user=caddy password=hunter2", false},
		{"bolt:{env.SSO_TEST_DIR}/sso.db", "bolt:/var/lib/sso-test/sso.db", false},
		// Written out: the same store, and the warning when it has a password.
		{"postgres:" + url, "postgres:" + url, true},
		{url, url, true},
		{kv, kv, true},
		{"postgres:" + kv, "postgres:" + kv, true},
		{"postgres://caddy:hunter2@db.example/{env.SSO_TEST_DIR}", "postgres://caddy:hunter2@db.example//var/lib/sso-test", true},
		{"postgres://caddy@db.example/sso", "postgres://caddy@db.example/sso", false},
		{"postgres:host=db.example user=caddy password='a{b}c'", "postgres:host=db.example user=caddy password='a{b}c'", true},
		{"/var/lib/sso-test/sso.db", "/var/lib/sso-test/sso.db", false},
	} {
		var stderr bytes.Buffer
		got, err := parseStore(&stderr, "--to", tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		want, err := backend.Parse(tc.literal)
		if err != nil {
			t.Fatalf("%s: %v", tc.literal, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: opens %+v, want %+v (as %s)", tc.raw, got, want, tc.literal)
		}
		warning := stderr.String()
		if gotWarn := strings.Contains(warning, "other local users"); gotWarn != tc.warn {
			t.Errorf("%s: warned %v, want %v: %q", tc.raw, gotWarn, tc.warn, warning)
		}
		if tc.warn && (!strings.Contains(warning, "--to 'postgres:{env.SSO_DATABASE_URL}'") || !strings.Contains(warning, "PGPASSWORD") ||
			strings.Count(warning, "\n") != 1) {
			t.Errorf("%s: warning %q, want one line naming --to, the placeholder and PGPASSWORD", tc.raw, warning)
		}
		if strings.Contains(warning, "hunter2") || strings.Contains(warning, "db.example") {
			t.Errorf("%s: the warning shows the DSN: %q", tc.raw, warning)
		}
	}
}

// TestParseStoreUnsetVariable: a placeholder whose variable is unset (or
// empty) is an error naming the variable and the flag, never a store with
// an empty DSN, and it shows no value, not even one another placeholder
// in the argument resolved to.
func TestParseStoreUnsetVariable(t *testing.T) {
	t.Setenv("SSO_TEST_PW", "hunter2")
	t.Setenv("SSO_TEST_EMPTY", "")
	t.Setenv("SSO_TEST_UNSET", "")
	os.Unsetenv("SSO_TEST_UNSET") // t.Setenv restores it afterwards
	for _, tc := range []struct{ raw, name string }{
		{"postgres:{env.SSO_TEST_UNSET}", "SSO_TEST_UNSET"},
		{"{env.SSO_TEST_UNSET}", "SSO_TEST_UNSET"},
		{"postgres:{env.SSO_TEST_EMPTY}", "SSO_TEST_EMPTY"},
		{"postgres://caddy:{env.SSO_TEST_PW}@db.example/{env.SSO_TEST_UNSET}", "SSO_TEST_UNSET"},
		{"host=db.example password={env.SSO_TEST_PW} dbname={env.SSO_TEST_UNSET}", "SSO_TEST_UNSET"},
	} {
		var stderr bytes.Buffer
		spec, err := parseStore(&stderr, "--from", tc.raw)
		if err == nil {
			t.Errorf("%s: no error, opens %v", tc.raw, spec)
			continue
		}
		msg := err.Error() + stderr.String()
		if !strings.Contains(err.Error(), "{env."+tc.name+"}") || !strings.HasPrefix(err.Error(), "--from: ") {
			t.Errorf("%s: %v; want --from and the variable %s named", tc.raw, err, tc.name)
		}
		if strings.Contains(msg, "hunter2") || strings.Contains(msg, "db.example") {
			t.Errorf("%s: shows a value: %s", tc.raw, msg)
		}
	}
}
