package check_test

import (
	"path/filepath"
	"strings"
	"testing"
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
			r, out := checkAdapted(t, cf)
			if !strings.Contains(out, "✗ "+tc.want) || !strings.Contains(out, tc.hint) || r.OK {
				t.Errorf("want the error %q saying %q (OK %v):\n%s", tc.want, tc.hint, r.OK, out)
			}
			if len(r.IdPs) != 1 || len(r.IdPs[0].Checks) != 1 {
				t.Errorf("check probed the setting; want the one finding naming the placeholder:\n%s", out)
			}
		})
	}
}
