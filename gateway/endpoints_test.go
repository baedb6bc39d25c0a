package gateway

import "testing"

// TestEndpointLabel: each endpoint the gateway serves under the path
// prefix has a label of its own in endpoint_duration_seconds, an IdP's
// endpoint without the IdP's name; any other path, which a client can
// make up without end, is "other".
func TestEndpointLabel(t *testing.T) {
	served := []struct{ rest, want string }{
		{"login", "login"},
		{"logout", "logout"},
		{"whoami", "whoami"},
		{"jwks.json", "jwks.json"},
		{"signin-failed", "signin-failed"},
		{"oidc/entra/callback", "callback"},
		{"oidc/entra/backchannel-logout", "backchannel-logout"},
		{"oidc/entra/frontchannel-logout", "frontchannel-logout"},
		{"saml/okta/acs", "acs"},
		{"saml/okta/metadata", "metadata"},
		{"saml/okta/slo", "slo"},
	}
	rt := &Route{Signer: &IdentitySigner{}} // with the identity token, so jwks.json is served
	seen := map[string]string{}
	for _, tt := range served {
		got := EndpointLabel(tt.rest)
		if got != tt.want {
			t.Errorf("EndpointLabel(%q) = %q, want %q", tt.rest, got, tt.want)
		}
		if prev, ok := seen[got]; ok && got != "other" {
			t.Errorf("%q and %q share the label %q", prev, tt.rest, got)
		}
		seen[got] = tt.rest
		// The gateway's own endpoints are the ones it answers at: those
		// with a method list of their own.
		if own := rt.ownEndpointMethods(tt.rest) != ""; own != (got == tt.rest) {
			t.Errorf("%q: served by the gateway itself %v, but labelled %q", tt.rest, own, got)
		}
	}
	for _, rest := range []string{
		"", "other", "login/", "Login", "whoami/x", "x/login",
		"oidc/entra/acs", "saml/okta/callback", // the other protocol's endpoint
		"oidc//callback", "oidc/entra/callback/x", "oidc/entra", "ldap/corp/callback",
		"saml/okta/" + string(make([]byte, 300)),
	} {
		if got := EndpointLabel(rest); got != "other" {
			t.Errorf("EndpointLabel(%.40q) = %q, want other", rest, got)
		}
	}
}
