package cli

import (
	"io"
	"testing"

	"github.com/caddy-sso/caddy-sso/store/backend"
)

// TestParseStoreWindowsPath: a Windows path given to --store, with its
// drive letter's colon, is a bbolt file as written, never read as a
// scheme or a PostgreSQL connection string; bolt: before it is taken off.
// It runs on every system: the parsing is the same on all.
func TestParseStoreWindowsPath(t *testing.T) {
	for _, path := range []string{
		`C:\caddy\sso.db`,
		`c:\caddy\sso.db`,
		`C:/caddy/sso.db`,
		`C:sso.db`,
		`C:\Program Files\Caddy\sso.db`,
		`C:\Users\host\sso.db`,
		`D:\postgres\sso.db`,
		`\\fileserver\share\sso.db`,
	} {
		for _, arg := range []string{path, "bolt:" + path} {
			spec, err := parseStore(io.Discard, "--store", arg)
			if err != nil || spec.Backend != backend.Bolt || spec.Path != path {
				t.Errorf("--store %s: got %s %q, %v; want the bbolt file %s", arg, spec.Backend, spec.Path, err, path)
			}
		}
	}
}
