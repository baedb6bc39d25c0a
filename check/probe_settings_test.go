package check_test

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/check"
)

// TestCheckNamesUnsetSAMLSetting: every SAML setting the probe reads is
// held to its placeholders as Caddy's start holds it, not only the first
// one: a metadata_file or an idp_entity_id whose placeholder is empty here
// is named, with what to look at (the variable in this command's
// environment, the file for a {file.…}), and nothing is probed.
func TestCheckNamesUnsetSAMLSetting(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_ENTITY", "")
	missing := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct{ name, settings, want, hint string }{
		{"metadata_file from the environment", "metadata_file /etc/idp/{env.CADDY_SSO_TEST_ENTITY}.xml",
			"metadata_file {env.CADDY_SSO_TEST_ENTITY} is empty here", "this command's environment"},
		{"idp_entity_id after a metadata_url", "metadata_url http://127.0.0.1:1/md\n\t\t\tidp_entity_id {env.CADDY_SSO_TEST_ENTITY}",
			"idp_entity_id {env.CADDY_SSO_TEST_ENTITY} is empty here", "this command's environment"},
		{"a file placeholder", "metadata_url http://127.0.0.1:1/{file." + missing + "}",
			"metadata_url {file." + missing + "} is empty here", "is the file there, readable by this command's user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := "{\n\tsso {\n\t\tidp corp saml {\n\t\t\t" + tc.settings + "\n\t\t}\n\t}\n}\nhttps://app.example.com {\n\tsso corp\n\trespond app\n}\n"
			cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			r, err := check.Run(context.Background(), cfg, &http.Client{Timeout: time.Second}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := r.Print(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if !strings.Contains(out, "✗ "+tc.want) || !strings.Contains(out, tc.hint) || r.OK {
				t.Errorf("want the error %q saying %q (OK %v):\n%s", tc.want, tc.hint, r.OK, out)
			}
			if len(r.IdPs) != 1 || len(r.IdPs[0].Checks) != 1 {
				t.Errorf("check probed the setting; want the one finding naming the placeholder:\n%s", out)
			}
		})
	}
}
