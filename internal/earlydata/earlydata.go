// Package earlydata holds the rule for requests that arrive in TLS 1.3
// early data, for the gateway's endpoints (gateway) and sso_scim
// (provision/scim). It lives below both so that they cannot drift apart.
package earlydata

import "net/http"

// In reports whether r came in TLS 1.3 early data: HTTP/3 0-RTT, which
// Caddy accepts unless the global options say `servers { 0rtt off }`
// (Go's TLS server over TCP takes none). Such a request can be replayed by
// anyone on the path (RFC 8470, RFC 9001 9.2).
func In(r *http.Request) bool { return r.TLS != nil && !r.TLS.HandshakeComplete }

// Refuse reports whether r must be answered 425 Too Early (RFC 8470 5.2):
// it came in early data with a method that changes something at the
// server (RFC 9110 9.2.1), which a replay would change again. The client
// sends it again once the handshake is done.
func Refuse(r *http.Request) bool { return In(r) && !safe(r.Method) }

// safe reports the methods that change nothing at the server. The
// gateway's GETs that act do nothing new replayed: the IdP takes an OIDC
// code once, a front-channel logout names one session, and a SAML logout
// message by redirect is taken once.
func safe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
