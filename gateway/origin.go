package gateway

import (
	"net/http"

	"github.com/caddy-sso/caddy-sso/idp"
)

// Origin is how the browser reached a protected site, as the Caddy handler
// judged it (it alone knows Caddy's trusted proxies and the route's host
// matchers): the site, whether cookies get the Secure attribute, and
// whether URLs may be built on it.
type Origin struct {
	Site   idp.Origin
	Secure bool
	// Vouched: the host is the configured base_url, or one that a host
	// matcher of this route accepted. Only then is anything that leaves
	// the gateway built on it: the OIDC redirect URI, the SAML ACS and
	// entity ID, the identity token's iss and aud (docs/security.md,
	// "Host-derived URLs"). A bare Host header is the client's to choose.
	Vouched bool
}

// BaseOrigin is the origin a base_url setting fixes.
func BaseOrigin(raw string) (Origin, error) {
	o, err := idp.ParseOrigin(raw)
	if err != nil {
		return Origin{}, err
	}
	return Origin{Site: o, Secure: o.Secure(), Vouched: true}, nil
}

// SessionCookie is the name of the session cookie on this origin.
func (o Origin) SessionCookie() string {
	if o.Secure {
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
			o.Site.Host, forwarded = fh, true
		}
	}
	o.Site.Host = idp.CanonicalHost(o.Site.Scheme, o.Site.Host)
	o.Secure = o.Site.Secure()
	return o, forwarded
}
