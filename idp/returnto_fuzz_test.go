package idp

import (
	"net/url"
	"strings"
	"testing"
)

// browserReadsAuthority models how a WHATWG browser reads the start of a
// relative reference against an https base (leading C0 controls and
// spaces trimmed, every tab, CR and LF removed, '\' read as '/'): whether
// it begins with two slashes, which name another host.
func browserReadsAuthority(s string) bool {
	s = strings.TrimLeft(s, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	s = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(s)
	if len(s) < 2 {
		return false
	}
	sl := func(c byte) bool { return c == '/' || c == '\\' }
	return sl(s[0]) && sl(s[1])
}

// unescapeOnce percent-decodes every well-formed escape of s.
func unescapeOnce(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FuzzLocalPath: whatever a return_to or RelayState holds, LocalPath
// gives "/" or a path that resolves on the site, holds no byte a browser
// or a header treats specially, reads as no other host however many times
// it is percent-decoded (a server or app behind may decode again), and is
// its own LocalPath.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "//", "/x{{env}}?q={a}", `/a\..\..\x`, "/a%5C..%5Cx?q=1",
		"/%252F%252Fevil.example%25", "/%255Cevil.example%25", "/%25252F%25252Fevil.example%2525",
		"/%2F%2Fevil.example%zz", "/reports?year=2026", "/a/b#frag", "/%E2%9C%93", "/search?q=a%2Fb",
		"/search?q=100%25", "/files?path=C:\\data", "/sale/100%25", "/\t/evil", "/%09/evil", "javascript:alert(1)",
		"/\u2215evil", "https://evil", "/\\evil", "/?\n", "/%%30A/evil", "/ /evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := LocalPath(raw)
		if got == "/" {
			return
		}
		if got[0] != '/' {
			t.Fatalf("LocalPath(%q) = %q: not a path", raw, got)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
				t.Fatalf("LocalPath(%q) = %q: byte %#x a header/browser may not carry", raw, got, c)
			}
		}
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || u.User != nil || u.Opaque != "" {
			t.Fatalf("LocalPath(%q) = %q parses to host %q scheme %q err %v", raw, got, u.Host, u.Scheme, err)
		}
		base, _ := url.Parse("https://app.example.com/base/page")
		if r := base.ResolveReference(u); r.Host != "app.example.com" || r.Scheme != "https" {
			t.Fatalf("LocalPath(%q) = %q resolves to %v", raw, got, r)
		}
		path := got
		if i := strings.IndexAny(got, "?#"); i >= 0 {
			path = got[:i]
		}
		s := path
		for range 6 {
			if browserReadsAuthority(s) || strings.Contains(s, "\\") {
				t.Fatalf("LocalPath(%q) = %q: a decoded layer %q reads as another host", raw, got, s)
			}
			d := unescapeOnce(s)
			if d == s {
				break
			}
			s = d
		}
		if again := LocalPath(got); again != got {
			t.Fatalf("LocalPath not idempotent: %q -> %q -> %q", raw, got, again)
		}
	})
}
