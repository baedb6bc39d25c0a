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
		{[]string{" admins", "admins ", "\u00a0admins"}, "%20admins,admins%20,%C2%A0admins"},
		{[]string{"a\nb", "tab\tin"}, "a%0Ab,tab%09in"},
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
