package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check --config exits non-zero when it finds an error, naming how many:
// a script or CI step runs it to stop a config from being deployed, and
// the printed report alone would let it through.
func TestCLICheckConfigExitCode(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_TENANT", "")
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	err := os.WriteFile(cf, []byte("{\n\tsso {\n\t\tidp corp oidc {\n\t\t\tissuer https://127.0.0.1:1/{env.CADDY_SSO_TEST_TENANT}\n"+
		"\t\t\tclient_id abc\n\t\t}\n\t}\n}\nhttps://app.example.com {\n\tsso corp\n\treverse_proxy 127.0.0.1:8080\n}\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cli(context.Background(), "check", "--config", cf, "--timeout", "1s")
	if err == nil || err.Error() != "check found 1 error(s)" {
		t.Errorf("check of a config with an error: %v, want \"check found 1 error(s)\"\n%s", err, out)
	}
	if !strings.Contains(out, "issuer {env.CADDY_SSO_TEST_TENANT} is empty") {
		t.Errorf("check did not print its report:\n%s", out)
	}
}

// check without --config, where no Caddyfile is, says to give one rather
// than check nothing and pass.
func TestCLICheckWithoutConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	out, err := cli(context.Background(), "check")
	if err == nil || !strings.Contains(err.Error(), "no config: give --config") {
		t.Errorf("check with no config: %v, want \"no config: give --config\"\n%s", err, out)
	}
}
