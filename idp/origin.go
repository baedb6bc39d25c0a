package idp

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Origin is how the browser reached a site: the scheme and host it sees.
// The Caddy handler decides it once per request (it alone knows which
// proxies are trusted to say X-Forwarded-Proto), and the gateway passes it
// down as a parameter (gateway.Origin): the base URL every Provider method
// takes, the session cookie's attributes and the identity token's issuer
// are built on it. Only the flow cookies, which FlowCookies sets from the
// request alone, read it from the request's context (WithOrigin,
// SecureRequest).
type Origin struct {
	Scheme string // "https" or "http"
	Host   string // host, with the port when not the scheme's default
}

// String returns scheme://host.
func (o Origin) String() string { return o.Scheme + "://" + o.Host }

// URL returns the absolute URL of path (which starts with "/") on the site.
func (o Origin) URL(path string) string { return o.Scheme + "://" + o.Host + path }

// Secure reports whether cookies set for this site must be Secure: always,
// except on plain-http loopback sites (local demos and tests), where clients
// would drop them. A plain-http site on any other host is assumed to sit
// behind a TLS-terminating proxy.
func (o Origin) Secure() bool { return o.Scheme == "https" || !IsLoopbackHost(o.Host) }

// IsLoopbackHost reports whether host (with or without a port) names this
// machine: localhost, 127.0.0.0/8 or ::1.
// It runs on every request to a plain-http site, so it allocates nothing:
// no error for a host without a port, no net.IP.
func IsLoopbackHost(host string) bool {
	if strings.LastIndexByte(host, ':') > strings.LastIndexByte(host, ']') {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.IsLoopback()
}

type originKey struct{}

// WithOrigin returns r carrying o, for RequestOrigin.
func WithOrigin(r *http.Request, o Origin) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), originKey{}, o))
}

// RequestOrigin returns the origin WithOrigin attached to r, or else the
// one r shows by itself (TLS and Host, no proxy headers).
func RequestOrigin(r *http.Request) Origin {
	if o, ok := r.Context().Value(originKey{}).(Origin); ok {
		return o
	}
	o := Origin{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		o.Scheme = "https"
	}
	return o
}

// ParseOrigin reads a configured origin (a site's base URL, such as
// https://app.example.com): an absolute URL that idp.CheckURL accepts
// (https, or plain http on a loopback host), without path, query or
// fragment. A trailing "/" is allowed. The host is kept as browsers send
// it (CanonicalHost): an internationalized name as its A-label.
func ParseOrigin(raw string) (Origin, error) {
	u, err := CheckURL(raw)
	if err != nil {
		return Origin{}, err
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Opaque != "" {
		return Origin{}, fmt.Errorf("%q must be scheme://host[:port] only, without a path or query", raw)
	}
	o := Origin{Scheme: u.Scheme, Host: CanonicalHost(u.Scheme, u.Host)}
	if !isASCII(o.Host) {
		return Origin{}, fmt.Errorf("%q: the host is not a valid internationalized domain name", raw)
	}
	return o, nil
}

// CanonicalHost is host[:port] as browsers write it in the Origin header
// and in the URLs they show, and as Caddy's host matcher holds it (its
// Provision converts with golang.org/x/net/idna and lowers the case): in
// lower case, an internationalized name as its A-label (bücher.example is
// xn--bcher-kva.example), without the scheme's default port. A proxy that
// forwards "app.example.com:443", or a base_url written in Unicode, would
// otherwise make redirect URIs no IdP has registered, and refuse the
// site's own sign-out form as cross-site. A name idna refuses is left in
// lower case (ParseOrigin refuses it).
func CanonicalHost(scheme, host string) string {
	host = strings.ToLower(host)
	if !isASCII(host) {
		name, port := host, ""
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			name, port = host[:i], host[i:]
		}
		// Lookup maps as browsers do (UTS #46, nontransitional).
		if a, err := idna.Lookup.ToASCII(name); err == nil {
			host = strings.ToLower(a) + port
		}
	}
	switch scheme {
	case "https":
		return strings.TrimSuffix(host, ":443")
	case "http":
		return strings.TrimSuffix(host, ":80")
	}
	return host
}

// isASCII reports whether s is all ASCII: the Host of nearly every
// request, which CanonicalHost then leaves to strings.ToLower.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
