package gateway

import (
	"net/http"
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

// InEarlyData reports whether r came in TLS 1.3 early data: HTTP/3 0-RTT,
// which Caddy accepts unless the global options say `servers { 0rtt off }`
// (Go's TLS server over TCP takes none). Such a request can be replayed by
// anyone on the path (RFC 8470, RFC 9001 9.2).
func InEarlyData(r *http.Request) bool { return r.TLS != nil && !r.TLS.HandshakeComplete }

// safeMethod reports the methods that change nothing at the server (RFC
// 9110 9.2.1), which the gateway's endpoints answer in early data too.
// The GETs that act do nothing new replayed: the IdP takes an OIDC code
// once, a front-channel logout names one session, and a SAML logout
// message by redirect is taken once.
func safeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
