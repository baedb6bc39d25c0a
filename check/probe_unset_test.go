package check_test

import (
	"strings"
	"testing"
)

// A setting the probe reads with a placeholder that is empty here is named,
// as Caddy's start names it, and nothing is probed: what is left of the URL
// is another one (review 22, item 3).
func TestCheckNamesUnsetPlaceholder(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_HOST", "")
	t.Setenv("CADDY_SSO_TEST_TENANT", "")
	const site = "https://app.example.com {\n\tsso corp\n\treverse_proxy 127.0.0.1:8080\n}\n"
	for _, tc := range []struct{ name, idp, want string }{
		{"issuer tenant", "idp corp oidc {\n\t\t\tissuer https://127.0.0.1:1/{env.CADDY_SSO_TEST_TENANT}\n\t\t\tclient_id abc\n\t\t}",
			"issuer {env.CADDY_SSO_TEST_TENANT} is empty"},
		{"issuer host", "idp corp oidc {\n\t\t\tissuer https://{env.CADDY_SSO_TEST_HOST}/oauth2/default\n\t\t\tclient_id abc\n\t\t}",
			"issuer {env.CADDY_SSO_TEST_HOST} is empty"},
		{"whole issuer", "idp corp oidc {\n\t\t\tissuer {env.CADDY_SSO_TEST_HOST}\n\t\t\tclient_id abc\n\t\t}",
			"issuer {env.CADDY_SSO_TEST_HOST} is empty"},
		{"saml metadata_url", "idp corp saml {\n\t\t\tmetadata_url http://127.0.0.1:1/{env.CADDY_SSO_TEST_TENANT}/metadata\n\t\t}",
			"metadata_url {env.CADDY_SSO_TEST_TENANT} is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := "{\n\tsso {\n\t\t" + tc.idp + "\n\t}\n}\n" + site
			r, out := checkAdapted(t, cf)
			if !strings.Contains(out, tc.want) || !strings.Contains(out, "this command's environment") || r.OK {
				t.Errorf("check does not name the unset placeholder (want %q, OK %v):\n%s", tc.want, r.OK, out)
			}
			if len(r.IdPs) != 1 || len(r.IdPs[0].Checks) != 1 {
				t.Errorf("check probed what is left of the setting; want the one finding naming the placeholder:\n%s", out)
			}
		})
	}
}
