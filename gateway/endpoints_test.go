package gateway

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

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
	rt := &Route{Keys: new(IdentityKeys)}
	rt.Keys.Add(&IdentitySigner{}) // a route of the config signs, so jwks.json is served
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

// TestProtocolEndpointsLabelled: every endpoint a protocol's package lists
// (ProtocolEndpoints, which its ServeEndpoint serves: TestEndpointsAreServed
// in idp/oidc and idp/saml), and its callback, has the
// endpoint_duration_seconds label of its own name, not "other"; the same
// name under the other protocol is "other". TestEndpointLabel pins the
// label values dashboards depend on.
func TestProtocolEndpointsLabelled(t *testing.T) {
	other := map[string]string{idp.ProtocolOIDC: idp.ProtocolSAML, idp.ProtocolSAML: idp.ProtocolOIDC}
	for protocol, wrong := range other {
		callback, _ := idp.CallbackEndpoint(protocol)
		names := []string{callback}
		for _, e := range ProtocolEndpoints(protocol) {
			names = append(names, e.Name)
		}
		if len(names) < 2 {
			t.Errorf("%s: ProtocolEndpoints lists none", protocol)
		}
		for _, name := range names {
			if got := EndpointLabel(protocol + "/corp/" + name); got != name {
				t.Errorf("EndpointLabel(%q) = %q, want %q", protocol+"/corp/"+name, got, name)
			}
			if got := EndpointLabel(wrong + "/corp/" + name); got != "other" {
				t.Errorf("EndpointLabel(%q) = %q, want other", wrong+"/corp/"+name, got)
			}
		}
	}
	if got := ProtocolEndpoints("ldap"); got != nil {
		t.Errorf("ProtocolEndpoints(ldap) = %v, want none", got)
	}
}

// TestEndpointLabelAllocs: EndpointLabel runs on every request under the
// path prefix (the endpoint_duration_seconds metric), so it must not
// allocate, for the gateway's own endpoints, an IdP's, or any other path.
// It holds because oidc.Endpoints and saml.Endpoints are inlined into
// protocolEndpoint, where their lists stay on the stack: an endpoint list
// grown past the inliner's budget would allocate, and this says so.
func TestEndpointLabelAllocs(t *testing.T) {
	for _, rest := range []string{
		"login", "signin-failed",
		"oidc/entra/callback", "oidc/entra/backchannel-logout", "oidc/entra/frontchannel-logout",
		"saml/okta/acs", "saml/okta/metadata", "saml/okta/slo",
		"saml/okta/nope", "ldap/corp/callback", "favicon.ico",
	} {
		if n := testing.AllocsPerRun(100, func() { _ = EndpointLabel(rest) }); n != 0 {
			t.Errorf("EndpointLabel(%q) allocates %v times per call, want 0", rest, n)
		}
	}
}
