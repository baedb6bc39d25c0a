package check_test

import (
	"slices"
	"strings"
	"testing"
)

// TestCheckSiteOrigins: the origin check prints the values under is the
// one browsers reach the site at, as Caddy serves it: https on a host
// name unless the address says http (or the port is the HTTP port), and
// the port written only when it is not the scheme's own, so that the
// Redirect URI registered at the IdP is character for character the one
// sign-in sends. A site without a host shows <host>, which the error
// about it explains; no warning about plain http is added for it.
func TestCheckSiteOrigins(t *testing.T) {
	for _, tc := range []struct{ name, globals, address, want string }{
		{"https by default", "", "app.example.com", "https://app.example.com"},
		{"https on 443", "", "app.example.com:443", "https://app.example.com"},
		{"https on another port", "", "app.example.com:8443", "https://app.example.com:8443"},
		{"http on 80", "", "http://app.example.com", "http://app.example.com"},
		{"http on another port", "", "http://app.example.com:8080", "http://app.example.com:8080"},
		{"on the configured http_port", "\thttp_port 8080\n", "http://app.example.com:8080", "http://app.example.com:8080"},
		{"no host", "", ":8443", "http://<host>:8443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkOkta(t, tc.globals, tc.address+" {\n\tsso okta\n\trespond app\n}\n")
			if got := r.IdPs[0].Sites; !slices.Equal(got, []string{tc.want}) {
				t.Errorf("sites %q, want %q", got, tc.want)
			}
			if v := fieldValues(r, "okta", "Redirect URI"); !slices.Equal(v, []string{tc.want + "/.sso/oidc/okta/callback"}) {
				t.Errorf("Redirect URI %q, want %s/.sso/oidc/okta/callback", v, tc.want)
			}
			if v := fieldValues(r, "okta", "Post-logout redirect URI"); !slices.Equal(v, []string{tc.want + "/"}) {
				t.Errorf("Post-logout redirect URI %q, want %s/", v, tc.want)
			}
			if strings.HasPrefix(tc.address, ":") {
				for _, p := range r.Problems {
					if strings.Contains(p.Message, "plain http") {
						t.Errorf("a site without a host drew the plain http warning: %s", p.Message)
					}
				}
			}
		})
	}
}
