package cli_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// A restore while a Caddy runs the sso app is refused, naming that Caddy's
// store and how to restore into it, and writes nothing: without --store it
// would write the default store, which that Caddy does not use (review 22,
// item 5, the demo's case); --address and --config, which restore never
// writes through, are refused rather than ignored.
func TestRestoreRefusesWhileCaddyRunsTheApp(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	addr := w.GW.AddressFlag()
	backup := filepath.Join(t.TempDir(), "b.jsonl")
	mustCLI(t, "backup", backup, addr)
	xdg, other := t.TempDir(), filepath.Join(t.TempDir(), "other", "sso.db")
	// A config whose admin endpoint no Caddy serves: --config, like
	// --address, names a running Caddy, and is refused, not ignored.
	config := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(config, []byte(`{"admin": {"listen": "127.0.0.1:1"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_DATA_HOME", xdg) // where the default store would be written
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"--address of the running Caddy", []string{addr, backup}, []string{
			"a Caddy running the sso app answers at " + strings.TrimPrefix(addr, "--address="), "with the store bolt:" + w.GW.StorePath(),
			"restore works offline only", "caddy sso restore --store 'bolt:" + w.GW.StorePath() + "' " + backup}},
		{"--address with --store", []string{addr, "--store", other, backup}, []string{"--address and --config name a running Caddy", "omit them"}},
		{"--address where no Caddy answers", []string{"--address=127.0.0.1:1", backup}, []string{
			"--address and --config name a running Caddy", "cannot reach Caddy's admin endpoint at 127.0.0.1:1", "--store <store>"}},
		{"--config where no Caddy answers", []string{"--config", config, backup}, []string{
			"--address and --config name a running Caddy", "cannot reach Caddy's admin endpoint at 127.0.0.1:1", "--store <store>"}},
		{"--store of the running Caddy", []string{"--store", w.GW.StorePath(), backup}, []string{
			"refusing to replace " + w.GW.StorePath(), "in use by a running Caddy", "offline only: stop that Caddy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cli(context.Background(), append([]string{"restore"}, tc.args...)...)
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("restore %v: %v, want an error with %q\n%s", tc.args, err, want, out)
				}
			}
			for _, dir := range []string{xdg, filepath.Dir(other)} {
				_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, _ error) error {
					if d != nil && !d.IsDir() {
						t.Errorf("restore %v wrote %s", tc.args, path)
					}
					return nil
				})
			}
		})
	}
}
