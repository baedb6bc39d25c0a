// Package urlpath holds the rule for a path an operator configures for
// request paths to match: the sso handler's path_prefix (gateway) and
// sso_scim's base_path (provision/scim). It lives below both so that they
// cannot drift apart.
package urlpath

import (
	"path"
	"strings"
)

// Chars are the characters a configured path may hold between its
// slashes: RFC 3986's pchar without percent-encoding, which request paths
// arrive decoded from (a path with %, ?, # or a space could never match
// one).
const Chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"

// Segments reports whether p, a path without its leading and trailing
// slash, is made of segments that are non-empty, not . or .. (clients
// resolve those away, so no request would match), and of Chars only.
func Segments(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.Trim(seg, Chars) != "" {
			return false
		}
	}
	return true
}

// Under reports whether p, a request's path, is under prefix (a path
// prefix ending in /) as the proxy in front of the handler may have seen
// it, and returns the path to serve it as. nginx picks a location, and
// Caddy's path matcher a route, on the path with its slashes merged and its
// dot segments resolved (Caddy's in any letter case, too), and then pass it
// on as the client sent it: //.sso/x and /.SSO/x reach the handler that
// serves /.sso/, and taken as outside it, a forward-auth handler would
// answer the browser as if it were the proxy (docs/forward-auth.md). Such
// a path in other letters is under prefix, and names no endpoint (the
// endpoints are served in the prefix's own letters). A path that needs no
// cleaning costs no allocation.
func Under(p, prefix string) (string, bool) {
	if hasPrefixFold(p, prefix) {
		return p, true
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return "", false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c, hasPrefixFold(c, prefix)
}

// hasPrefixFold is strings.HasPrefix without regard to letter case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
