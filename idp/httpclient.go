package idp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// maxRedirects is Go's own limit (net/http's default redirect policy),
// kept when SafeRedirects replaces that policy.
const maxRedirects = 10

// SafeRedirects returns a copy of c (nil: a client with DefaultHTTPTimeout)
// that follows a redirect only to a URL CheckURL accepts. Both protocols
// check their configured and discovered URLs with CheckURL, but net/http
// follows redirects wherever they point: an https JWKS, metadata or token
// endpoint answering 302 (or 307) with a plain-http Location would let
// whoever answers that leg supply the signing keys, or read the client
// secret and the code the request carries again. So every client that
// talks to an IdP goes through here.
//
// CheckURL's loopback exception is for a loopback IdP, not for a redirect
// to one: a hop to plain http is followed only from a request that was
// itself plain http on loopback. Otherwise a remote https IdP (or whoever
// answers for it) could point the gateway's fetch at whatever listens on
// its own loopback, Caddy's admin API on :2019 say, and have its answer
// taken for the IdP's.
//
// c's own CheckRedirect, if any, still runs after the URL passes; without
// one, Go's limit of 10 redirects is kept. c itself is not changed.
func SafeRedirects(c *http.Client) *http.Client {
	client := clientCopy(c)
	inner := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if _, err := CheckURL(req.URL.String()); err != nil {
			return fmt.Errorf("refusing redirect: %w", err)
		}
		if req.URL.Scheme == "http" && !loopbackHTTP(via) {
			return fmt.Errorf("refusing redirect to %s: plain http is followed only from a plain-http loopback IdP", req.URL.Redacted())
		}
		if inner != nil {
			return inner(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return client
}

// loopbackHTTP reports whether the request a redirect comes from, the last
// of via, may lead to plain http (PlainHTTPFrom). net/http always passes
// it; without one (a direct call) there is nothing to judge by, and
// CheckURL's rule alone applies.
func loopbackHTTP(via []*http.Request) bool {
	if len(via) == 0 {
		return true
	}
	from := via[len(via)-1]
	return from != nil && PlainHTTPFrom(from.URL)
}

// PlainHTTPFrom reports whether what from (an IdP's URL: its issuer, or a
// request to it) leads to may be plain http: only when from is itself
// plain http on loopback, a local test IdP. A redirect (SafeRedirects) and
// an endpoint a discovery document names follow it alike.
func PlainHTTPFrom(from *url.URL) bool {
	return from != nil && from.Scheme == "http" && IsLoopbackHost(from.Hostname())
}

// ErrRedirectRefused is returned (wrapped in a *url.Error) by a client
// from NoRedirects when the server answers with a redirect.
var ErrRedirectRefused = errors.New("refusing redirect: this endpoint has none")

// NoRedirects returns a copy of c (nil: a client with DefaultHTTPTimeout)
// that follows no redirect at all, for endpoints whose protocol gives them
// none: an OAuth 2.0 token endpoint (RFC 6749 3.2) is POSTed the client's
// credentials and the code, which a 307 or 308 would have it send again,
// to wherever the Location says.
func NoRedirects(c *http.Client) *http.Client {
	client := clientCopy(c)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return ErrRedirectRefused }
	return client
}

// clientCopy returns a copy of c to change, or a client with
// DefaultHTTPTimeout when c is nil.
func clientCopy(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: DefaultHTTPTimeout}
	}
	client := *c
	return &client
}
