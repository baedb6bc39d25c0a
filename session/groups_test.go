package session_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestJoinGroups: an app that splits the header on "," and percent-decodes
// each element gets the exact names back; one that only splits (and
// trims) never sees a name that was not there.
func TestJoinGroups(t *testing.T) {
	for _, tc := range []struct {
		groups []string
		want   string
	}{
		{nil, ""},
		{[]string{"eng", "admins"}, "eng,admins"},
		{[]string{"Domain Users", "Ünïcode"}, "Domain Users,Ünïcode"},
		{[]string{"guests,admins"}, "guests%2Cadmins"},
		{[]string{"100%"}, "100%25"},
		// Quotes and backslashes anywhere: HTTP-list parsers unquote
		// and unescape (TestJoinGroupsHTTPListParsers).
		{[]string{`"admins"`, "eng"}, "%22admins%22,eng"},
		{[]string{`ad"min`, `a\b`, `\"admins\"`}, "ad%22min,a%5Cb,%5C%22admins%5C%22"},
		{[]string{" admins", "admins ", "\u00a0admins"}, "%20admins,admins%20,%C2%A0admins"},
		{[]string{"a\nb", "tab\tin"}, "a%0Ab,tab%09in"},
		// C1 controls too (Unicode Cc): some stacks read U+0085 as a
		// line break.
		{[]string{"a\u0085b", "del\x7f", "csi\u009b"}, "a%C2%85b,del%7F,csi%C2%9B"},
		// Invisible format characters (Cf) at an edge: JavaScript's trim
		// strips U+FEFF, old .NET U+200B, old trims U+180E.
		{[]string{"\ufeffadmins", "admins\ufeff"}, "%EF%BB%BFadmins,admins%EF%BB%BF"},
		{[]string{"\u200badmins", "admins\u200d"}, "%E2%80%8Badmins,admins%E2%80%8D"},
		{[]string{"\u180eadmins", "\u2060admins"}, "%E1%A0%8Eadmins,%E2%81%A0admins"},
		{[]string{"\u202eadmins", "admins\u2066"}, "%E2%80%AEadmins,admins%E2%81%A6"},
		{[]string{"\u2028admins"}, "%E2%80%A8admins"},
		// Only the edges: inside a name they cannot be trimmed away.
		{[]string{"ad\u200bmins", "Zoe\u0308"}, "ad\u200bmins,Zoe\u0308"},
		{[]string{""}, ""},
	} {
		got := session.JoinGroups(tc.groups)
		if got != tc.want {
			t.Errorf("JoinGroups(%q) = %q, want %q", tc.groups, got, tc.want)
		}
		if len(tc.groups) == 0 || tc.groups[0] == "" {
			continue
		}
		var back []string
		for _, el := range strings.Split(got, ",") {
			v, err := url.PathUnescape(el)
			if err != nil {
				t.Fatalf("%q: %v", el, err)
			}
			back = append(back, v)
			if trimmed := strings.TrimFunc(el, anyTrim); trimmed == "admins" && !slices.Contains(tc.groups, "admins") {
				t.Errorf("%q reads as admins to an app that splits and trims", got)
			}
		}
		if !slices.Equal(back, tc.groups) {
			t.Errorf("decoded %q, want %q", back, tc.groups)
		}
	}
}

// TestJoinGroupsHTTPListParsers: apps that read X-Forwarded-Groups as an
// HTTP list (RFC 9110 5.6.1 with quoted strings, as Werkzeug's and
// requests' parse_list_header do) get the very elements a plain split on
// "," gets, so a group named `"admins"` never reads as admins; splitting
// and percent-decoding still gives the exact names.
func TestJoinGroupsHTTPListParsers(t *testing.T) {
	for _, groups := range [][]string{
		{`"admins"`, "eng"},
		{`"admins"`},
		{`x"`, `"admins`},
		{`"adm`, `ins"`},
		{`\"admins\"`, `"ad\min"`},
		{`say "hi", admins`},
	} {
		v := session.JoinGroups(groups)
		plain := strings.Split(v, ",")
		if got := parseListHeader(v); !slices.Equal(got, plain) {
			t.Errorf("JoinGroups(%q) = %q: an HTTP-list parser reads %q, a split %q", groups, v, got, plain)
		}
		var back []string
		for _, el := range plain {
			d, err := url.PathUnescape(el)
			if err != nil {
				t.Fatalf("%q: %v", el, err)
			}
			back = append(back, d)
		}
		if !slices.Equal(back, groups) {
			t.Errorf("JoinGroups(%q) = %q decodes to %q", groups, v, back)
		}
	}
}

// parseListHeader is Werkzeug's parse_list_header (werkzeug.http, 3.x) on
// Python's urllib.request.parse_http_list: split on commas outside quoted
// strings, where a backslash escapes the next character; strip each
// element; then an element in quotes is unquoted and unescaped.
func parseListHeader(v string) []string {
	var parts []string
	var part strings.Builder
	escape, quote := false, false
	for _, c := range v {
		switch {
		case escape:
			escape = false
		case quote && c == '\\':
			escape = true
			continue
		case quote && c == '"':
			quote = false
		case !quote && c == ',':
			parts = append(parts, part.String())
			part.Reset()
			continue
		case !quote && c == '"':
			quote = true
		}
		part.WriteRune(c)
	}
	if part.Len() > 0 {
		parts = append(parts, part.String())
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && p[0] == '"' && p[len(p)-1] == '"' {
			p = strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(p[1 : len(p)-1])
		}
		out = append(out, p)
	}
	return out
}

// anyTrim is the union of what common trims strip: Go's and Python's white
// space, JavaScript's U+FEFF, old .NET's U+200B, and, to be safe, every
// other invisible format character and U+180E.
func anyTrim(r rune) bool {
	return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) || r == '\u180e'
}

// TestPaddedGroupName: a name is padded when an app's trim could take
// something off an end, the very characters JoinGroups encodes there.
func TestPaddedGroupName(t *testing.T) {
	for _, g := range []string{" admins", "admins ", "admins\u00a0", "\u200badmins", "admins\ufeff", "\u202eadmins", "admins\u180e"} {
		if !session.PaddedGroupName(g) {
			t.Errorf("%q: not padded", g)
		}
		if enc := session.JoinGroups([]string{g}); !strings.Contains(enc, "%") {
			t.Errorf("%q: padded, but JoinGroups leaves it as %q", g, enc)
		}
	}
	for _, g := range []string{"admins", "ad min", "ad\u200bmins", "é", ""} {
		if session.PaddedGroupName(g) {
			t.Errorf("%q: padded", g)
		}
	}
}
