package caddymodule

import (
	"net/url"
	"strings"
)

// safeReturnTo returns raw when it is a path on this site, and "/" for
// anything else. Browsers repair URLs generously (they drop tabs and
// newlines, read '\' as '/', decode some escapes), so the rule is a strict
// allow-list rather than a search for known-bad forms: one leading '/', no
// second '/' or '\' after it in any spelling, no backslash or control
// character anywhere, and no scheme or host once parsed.
func safeReturnTo(raw string) string {
	if !isLocalPath(raw) {
		return "/"
	}
	return raw
}

func isLocalPath(raw string) bool {
	if len(raw) == 0 || len(raw) > 2048 || raw[0] != '/' {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	// Check the path as sent and once or twice decoded: "/%2f%2fevil",
	// "/%252f%252fevil" and "/%5cevil" all become network-path references
	// after a decoding somewhere along the way.
	s := raw
	for range 3 {
		if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
			return false
		}
		if strings.ContainsAny(s, "\\\x00\t\r\n") {
			return false
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if d == s {
			break
		}
		s = d
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return true
}
