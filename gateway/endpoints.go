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
	if ownEndpointAllow(rest) != "" {
		return rest
	}
	protocol, tail, _ := strings.Cut(rest, "/")
	name, endpoint, _ := strings.Cut(tail, "/")
	if name != "" && protocolEndpoint(protocol, endpoint) {
		return endpoint
	}
	return "other"
}

// ownEndpointAllow is the Allow of the gateway's own endpoint name, ""
// for any other name: the one list of those endpoints, whose methods
// serveEndpoint checks (Route.ownEndpointMethods) and whose names
// EndpointLabel gives.
func ownEndpointAllow(name string) string {
	switch name {
	case logoutEndpoint:
		return "GET, HEAD, POST" // GET shows the button that POSTs
	case loginEndpoint, whoamiEndpoint, repeatedSignInEndpoint, jwksEndpoint:
		return "GET, HEAD"
	}
	return ""
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
