package gateway

import (
	"strings"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// The gateway's own endpoints, under the path prefix. The protocols'
// endpoints live under <protocol>/<idp>/ and are named by their packages.
const (
	loginEndpoint  = "login"
	logoutEndpoint = "logout"
	whoamiEndpoint = "whoami"
	jwksEndpoint   = "jwks.json" // served only with an identity token
	// repeatedSignInEndpoint is the sign-in-failed page a callback the
	// IdP's site POSTs redirects to (repeatedSignIn).
	repeatedSignInEndpoint = "signin-failed"
)

// EndpointLabel names the endpoint at rest, the path after the prefix, for
// the endpoint_duration_seconds metric: one of the gateway's own endpoints
// by its name ("login"), an IdP's endpoint by its protocol's name for it
// without the IdP's ("oidc/entra/callback" is "callback"), and any other
// path "other", so that a client cannot grow the label set. The names are
// the ones serveEndpoint answers at, so an endpoint added there is labelled
// here by the same constant.
func EndpointLabel(rest string) string {
	switch rest {
	case loginEndpoint, logoutEndpoint, whoamiEndpoint, jwksEndpoint, repeatedSignInEndpoint:
		return rest
	}
	protocol, tail, _ := strings.Cut(rest, "/")
	name, endpoint, _ := strings.Cut(tail, "/")
	if name != "" && protocolEndpoint(protocol, endpoint) {
		return endpoint
	}
	return "other"
}

// protocolEndpoint reports whether protocol's providers serve endpoint
// (under <protocol>/<idp>/).
func protocolEndpoint(protocol, endpoint string) bool {
	switch protocol {
	case idp.ProtocolOIDC:
		switch endpoint {
		case idp.OIDCCallbackEndpoint, oidc.BackChannelLogoutEndpoint, oidc.FrontChannelLogoutEndpoint:
			return true
		}
	case idp.ProtocolSAML:
		switch endpoint {
		case idp.SAMLCallbackEndpoint, saml.MetadataEndpoint, saml.SLOEndpoint:
			return true
		}
	}
	return false
}
