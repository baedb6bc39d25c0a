package idp

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Origin is how the browser reached a site: the scheme and host it sees.
// Callback URLs, cookie attributes and the identity token's issuer all
// derive from it, so it is decided once per request, by the Caddy handler
// (which alone knows which proxies are trusted to say X-Forwarded-Proto),
// and passed down in the request's context (WithOrigin). Everything below
// reads it with RequestOrigin, so nothing can disagree about whether the
// site is https.
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
// fragment. A trailing "/" is allowed.
func ParseOrigin(raw string) (Origin, error) {
	u, err := CheckURL(raw)
	if err != nil {
		return Origin{}, err
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Opaque != "" {
		return Origin{}, fmt.Errorf("%q must be scheme://host[:port] only, without a path or query", raw)
	}
	return Origin{Scheme: u.Scheme, Host: CanonicalHost(u.Scheme, u.Host)}, nil
}

// CanonicalHost is host[:port] as browsers write it in the Origin header
// and in the URLs they show: in lower case, without the scheme's default
// port. A proxy that forwards "app.example.com:443" would otherwise make
// redirect URIs no IdP has registered, and refuse the site's own
// sign-out form as cross-site.
func CanonicalHost(scheme, host string) string {
	host = strings.ToLower(host)
	switch scheme {
	case "https":
		return strings.TrimSuffix(host, ":443")
	case "http":
		return strings.TrimSuffix(host, ":80")
	}
	return host
}
