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
// (under <protocol>/<idp>/): its callback, or one ProtocolEndpoints lists.
func protocolEndpoint(protocol, endpoint string) bool {
	if callback, _ := idp.CallbackEndpoint(protocol); callback != "" && callback == endpoint {
		return true
	}
	for _, e := range ProtocolEndpoints(protocol) {
		if e.Name == endpoint {
			return true
		}
	}
	return false
}

// ProtocolEndpoints are the endpoints protocol's providers serve besides
// the callback (idp.Provider.ServeEndpoint), as their package lists them;
// nil for a protocol there is none of. EndpointLabel labels them, and
// caddy sso check lists their URLs for the IdP's registration.
func ProtocolEndpoints(protocol string) []idp.Endpoint {
	switch protocol {
	case idp.ProtocolOIDC:
		return oidc.Endpoints()
	case idp.ProtocolSAML:
		return saml.Endpoints()
	}
	return nil
}

// IdPEndpointPaths are the paths, under pathPrefix, of the endpoints of
// the IdP name of protocol: its callback first, then its protocol's others
// (ProtocolEndpoints), the ones `caddy sso check` prints the URLs of.
// routeorder.Misrouted checks that Caddy's routes send each to a handler
// that serves it.
func IdPEndpointPaths(pathPrefix, protocol, name string) []string {
	base := endpointDir(pathPrefix, protocol, name)
	callback, _ := idp.CallbackEndpoint(protocol)
	paths := []string{base + callback}
	for _, e := range ProtocolEndpoints(protocol) {
		paths = append(paths, base+e.Name)
	}
	return paths
}

// EndpointPaths is where the route serves its IdPs' endpoints: its path
// prefix, and by IdP name their paths (IdPEndpointPaths), as
// routeorder.Describe takes them.
func (rt *Route) EndpointPaths() (string, map[string][]string) {
	idps := make(map[string][]string, len(rt.IdPs))
	for _, p := range rt.IdPs {
		idps[p.Name] = IdPEndpointPaths(rt.PathPrefix, p.Protocol, p.Name)
	}
	return rt.PathPrefix, idps
}
