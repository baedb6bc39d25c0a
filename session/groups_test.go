package session_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"

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
			if trimmed := strings.TrimSpace(el); trimmed == "admins" && !slices.Contains(tc.groups, "admins") {
				t.Errorf("%q reads as admins to an app that splits and trims", got)
			}
		}
		if !slices.Equal(back, tc.groups) {
			t.Errorf("decoded %q, want %q", back, tc.groups)
		}
	}
}
