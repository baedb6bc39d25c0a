// Package urlpath holds the rule for a path an operator configures for
// request paths to match: the sso handler's path_prefix (gateway) and
// sso_scim's base_path (provision/scim). It lives below both so that they
// cannot drift apart.
package urlpath

import "strings"

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
