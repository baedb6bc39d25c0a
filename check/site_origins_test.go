package check_test

import (
	"crypto/tls"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
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

// gatewayRedirect is the Redirect URI the running gateway builds for a
// browser's request to host over https (the sso handler's origin,
// gateway.RequestOrigin, then gateway.EndpointBase).
func gatewayRedirect(host string) string {
	r := httptest.NewRequest("GET", "https://"+host+"/", nil)
	r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	o, _ := gateway.RequestOrigin(r, false)
	return gateway.EndpointBase(o.Site, "/.sso/", idp.ProtocolOIDC, "okta") + idp.OIDCCallbackEndpoint
}

// TestCheckSiteOriginsAsBrowsersSendThem: check prints a site's values on
// its host as browsers send it and Caddy's host matcher accepts it, the
// Host the gateway builds its Redirect URI on: an internationalized name
// as its A-label, a JSON host matcher written in capitals in lower case.
func TestCheckSiteOriginsAsBrowsersSendThem(t *testing.T) {
	const cf = "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\n\n%s {\n\tsso okta\n\trespond app\n}\n"
	for _, tc := range []struct {
		name, address string
		edit          func(srv map[string]any)
		browser       string // the Host a browser sends
	}{
		{"an internationalized name", "bücher.example", func(map[string]any) {}, "xn--bcher-kva.example"},
		{"capitals in a JSON host matcher", "app.example.com", func(srv map[string]any) {
			srv["routes"].([]any)[0].(map[string]any)["match"] = []any{map[string]any{"host": []any{"App.Example.com"}}}
		}, "app.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkEdited(t, fmt.Sprintf(cf, tc.address), tc.edit)
			want := gatewayRedirect(tc.browser)
			if got := fieldValues(r, "okta", "Redirect URI"); !slices.Equal(got, []string{want}) {
				t.Errorf("check prints Redirect URI %q; the gateway sends redirect_uri %q", got, want)
			}
		})
	}
}
