package gateway

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/caddy-sso/caddy-sso/idp"
)

// Origin is how the browser reached a protected site, as the Caddy handler
// judged it (it alone knows Caddy's trusted proxies and the route's host
// matchers): the site, and whether URLs may be built on it. The gateway
// passes it down as a parameter: to the cookies it sets (Secure), the
// endpoints' base URL (EndpointBase), which the providers get as base,
// and the identity token's iss and aud.
type Origin struct {
	Site idp.Origin
	// Vouched: the host is the configured base_url, or one that a host
	// matcher of this route accepted. Only then is anything that leaves
	// the gateway built on it: the OIDC redirect URI, the SAML ACS and
	// entity ID, the identity token's iss and aud (docs/security.md,
	// "Host-derived URLs"). A bare Host header is the client's to choose.
	Vouched bool
	// Forwarded is the trusted proxy's X-Forwarded-Host the host was
	// taken from, as sent ("" when it came from Host): what the log
	// names when nothing vouches for it.
	Forwarded string
	// Named is the named route the sso handler is in, which invoke runs
	// (routeorder.Guard.Named): why nothing vouches for the host although
	// the invoking site may well have a host matcher.
	Named string
}

// NamedRouteAdvice is why an sso handler in a named route builds nothing
// on the Host, and the fix: the gateway's log and `caddy sso check` give it
// alike.
const NamedRouteAdvice = "the sso handler is in a named route, which any invoke may run, so the invoking site's host matcher does not vouch for the Host; set base_url in the sso directive, or put sso in the site itself (app.example.com { sso …; invoke app })"

// BaseOrigin is the origin a base_url setting fixes.
func BaseOrigin(raw string) (Origin, error) {
	o, err := idp.ParseOrigin(raw)
	if err != nil {
		return Origin{}, err
	}
	return Origin{Site: o, Vouched: true}, nil
}

// Secure reports whether cookies set on this origin get the Secure
// attribute (idp.Origin.Secure).
func (o Origin) Secure() bool { return o.Site.Secure() }

// SessionCookie is the name of the session cookie on this origin.
func (o Origin) SessionCookie() string {
	if o.Secure() {
		return SessionCookieSecure
	}
	return SessionCookiePlain
}

// RequestOrigin is the origin r names: the scheme of the connection and
// the Host header, or, when trusted (the peer is one of Caddy's trusted
// proxies), X-Forwarded-Proto and X-Forwarded-Host; the host as browsers
// write it (idp.CanonicalHost). forwarded reports a
// host taken from X-Forwarded-Host. Vouched is left for the caller, which
// knows the route's host matchers.
//
// A forwarded value that is not one host[:port] (see forwardedHost) gives
// an empty host, which no host matcher accepts: Caddy's wildcard matcher
// compares dot-separated labels only, so "[2001:db8::66]/x.example.test"
// passes *.example.test, and URLs built on it name another host.
func RequestOrigin(r *http.Request, trusted bool) (o Origin, forwarded bool) {
	o.Site = idp.Origin{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		o.Site.Scheme = "https"
	}
	if trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			o.Site.Scheme = p
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" && fh != r.Host {
			o.Site.Host, o.Forwarded, forwarded = forwardedHost(fh), fh, true
		}
	}
	o.Site.Host = idp.CanonicalHost(o.Site.Scheme, o.Site.Host)
	return o, forwarded
}

// forwardedHost is v when it is one host[:port] as a Host header carries
// it: a name of letters, digits, '-', '_' and '.', or a bracketed IPv6
// address, and a port of digits. A list of one value repeated
// ("a.example, a.example", from proxies that append) is that value; any
// other value gives "".
func forwardedHost(v string) string {
	first, rest, list := strings.Cut(v, ",")
	first = strings.TrimSpace(first)
	for list {
		var next string
		next, rest, list = strings.Cut(rest, ",")
		if strings.TrimSpace(next) != first {
			return ""
		}
	}
	host := first
	if i := strings.LastIndexByte(first, ':'); i >= 0 && !strings.Contains(first[i:], "]") {
		port := first[i+1:]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return ""
		}
		host = first[:i]
	}
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		// A zone ("%eth0") may hold any byte, '@' and '#' included, and a
		// browser reads a URL with one as another host; no browser takes
		// a zone in a URL anyway.
		if ip, err := netip.ParseAddr(host[1 : len(host)-1]); err != nil || !ip.Is6() || ip.Zone() != "" {
			return ""
		}
		return first
	}
	if host == "" || strings.Trim(strings.ToLower(host), "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
		return ""
	}
	return first
}
