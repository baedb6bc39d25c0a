package idp

import (
	"net/url"
	"strings"
)

// MaxLocalPath is the longest path LocalPath keeps: a flow cookie's whole
// size (maxFlowCookie), which no longer return path could fit in. So the
// flow cookie, not this, decides how long a link survives a sign-in, and
// the gateway comes back to a shorter page when one does not fit.
const MaxLocalPath = maxFlowCookie

// LocalPath returns raw when it is a path on this site, and "/" for
// anything else. It is applied to every return URL: after sign-in and logout,
// and to an IdP-initiated SAML RelayState, which anyone can post.
//
// Browsers repair URLs generously (they drop tabs and newlines, read '\' as
// '/', decode some escapes), so the rule is an allow-list rather than a
// search for known-bad forms: one leading '/', no second '/' or '\' after it
// in any spelling (as sent, or percent-decoded up to three times), no
// backslash in the path, no control character anywhere, no raw non-ASCII,
// and no scheme, host or user once parsed. The query and fragment only
// need the bytes a header can carry: they cannot change the host of a path
// that starts with one '/', and an app's own values hold '%' and '\'
// (q=100%25, path=C:%5Cdata).
//
// Braces come back percent-encoded, which reads the same to the app: a
// site that runs Caddy's templates over the gateway's pages (templates
// before handle, in Caddy's order) would otherwise execute "{{…}}" from a
// return URL the sign-out page repeats.
func LocalPath(raw string) string {
	if !isLocalPath(raw) {
		return "/"
	}
	if strings.ContainsAny(raw, "{}") {
		raw = strings.ReplaceAll(strings.ReplaceAll(raw, "{", "%7B"), "}", "%7D")
	}
	return raw
}

func isLocalPath(raw string) bool {
	if len(raw) == 0 || len(raw) > MaxLocalPath || raw[0] != '/' {
		return false
	}
	// Raw non-ASCII is refused: browsers percent-encode it themselves, and
	// some servers fold look-alikes of '/' and '.' into them.
	for i := 0; i < len(raw); i++ {
		if raw[i] >= 0x80 {
			return false
		}
	}
	path, rest := raw, ""
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		path, rest = raw[:i], raw[i:]
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	// Check the path as sent and as each of up to three rounds of
	// percent-decoding leaves it; more layers than that is refused
	// outright. A '%' that starts no escape is the path's own (/100%25
	// decodes to "/100%"): a round decodes the escapes around it and
	// leaves it, so that one stray '%' cannot end the checking before a
	// deeper layer ("/%252F%252Fevil%25") is seen.
	s, stable := path, false
	for range 4 {
		if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
				return false
			}
		}
		d := unescapeLenient(s)
		if d == s {
			stable = true
			break
		}
		s = d
	}
	if !stable {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return true
}

// unescapeLenient decodes every %XX escape of s and keeps any other '%'.
func unescapeLenient(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for ; i >= 0; i = strings.IndexByte(s, '%') {
		b.WriteString(s[:i])
		if i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			s = s[i+3:]
		} else {
			b.WriteByte('%')
			s = s[i+1:]
		}
	}
	b.WriteString(s)
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
