package caddymodule

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A placeholder that resolves to nothing names its cause: a {file.…} that
// read nothing (a typo in the path, a mode Caddy's user cannot read, an
// empty file) is the file's fault, not the environment's.
func TestResolveNamesWhatReadNothing(t *testing.T) {
	for _, c := range []struct{ raw, want, not string }{
		{"{file." + filepath.Join(t.TempDir(), "missing-secret") + "}", "is the file there, readable by Caddy's user", "environment"},
		{"{env.CADDY_SSO_TEST_UNSET_SECRET}", "is the variable set in Caddy's environment?", "file"},
	} {
		_, err := resolve(caddy.NewReplacer(), "client_secret", c.raw, false)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.not) {
			t.Errorf("resolve(%s) = %v, want an error saying %q", c.raw, err, c.want)
		}
	}
}
