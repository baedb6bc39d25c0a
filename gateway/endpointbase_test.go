package gateway

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestEndpointBase: the endpoints a route serves an IdP at (endpointBase,
// which every idp.Provider method takes) are EndpointBase's, the URLs
// `caddy sso check` prints for the IdP administrator.
func TestEndpointBase(t *testing.T) {
	for _, tc := range []struct {
		site     idp.Origin
		prefix   string
		protocol string
		name     string
		want     string
	}{
		{idp.Origin{Scheme: "https", Host: "app.example.com"}, DefaultPathPrefix, idp.ProtocolOIDC, "corp",
			"https://app.example.com/.sso/oidc/corp/"},
		{idp.Origin{Scheme: "http", Host: "127.0.0.1:8080"}, "/app/.sso/", idp.ProtocolSAML, "partner",
			"http://127.0.0.1:8080/app/.sso/saml/partner/"},
	} {
		got := EndpointBase(tc.site, tc.prefix, tc.protocol, tc.name)
		if got != tc.want {
			t.Errorf("EndpointBase(%v, %q, %q, %q) = %q, want %q", tc.site, tc.prefix, tc.protocol, tc.name, got, tc.want)
		}
		rt := &Route{PathPrefix: tc.prefix}
		if served := rt.endpointBase(Origin{Site: tc.site}, &IdP{Name: tc.name, Protocol: tc.protocol}); served != got {
			t.Errorf("route serves %q, EndpointBase says %q", served, got)
		}
	}
}
