package urlpath_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/urlpath"
)

func TestSegments(t *testing.T) {
	for p, want := range map[string]bool{
		"scim/v2": true, ".sso": true, "a/b~c/d@e": true,
		"": false, "scim//v2": false, "scim/../v2": false, "./x": false,
		"scim v2": false, "scim/v2?x=1": false, "scim%2Fv2": false, "a#b": false, "a\nb": false,
	} {
		if got := urlpath.Segments(p); got != want {
			t.Errorf("Segments(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		path, serve string
		under       bool
	}{
		{"/.sso/login", "/.sso/login", true},
		{"/.sso/", "/.sso/", true},
		{"//.sso/x", "/.sso/x", true},
		{"/./.sso/x", "/.sso/x", true},
		{"/a/../.sso/x", "/.sso/x", true},
		{"/a/b/../../.sso/oidc/corp/callback", "/.sso/oidc/corp/callback", true},
		{"//.sso//", "/.sso/", true},
		{"/.SSO/x", "/.SSO/x", true}, // Caddy's path matcher ignores case
		{"//.Sso/whoami", "/.Sso/whoami", true},
		{"//.sso", "", false}, // nginx's location /.sso/ and Caddy's /.sso/* take it for the app's
		{"/.ssox/y", "", false},
		{"/app/.sso/x", "", false},
		{"/.well-known/openid-configuration", "", false},
		{"/", "", false},
		{"/dashboard", "", false},
	} {
		serve, under := urlpath.Under(tc.path, "/.sso/")
		if under != tc.under || (under && serve != tc.serve) {
			t.Errorf("Under(%q) = %q, %v; want %q, %v", tc.path, serve, under, tc.serve, tc.under)
		}
	}
	// A clean path, as browsers send every path, costs no allocation.
	for _, p := range []string{"/dashboard/reports", "/.well-known/x", "/a/.hidden", "/dashboard/", "/.sso/login"} {
		if n := testing.AllocsPerRun(100, func() { urlpath.Under(p, "/.sso/") }); n != 0 {
			t.Errorf("Under(%q): %v allocations, want none", p, n)
		}
	}
}

// TestUnderPrefixWithoutDot: sso_scim's base_path (and a path_prefix not
// starting with a dot) follows the same rule: a path in other letters, or
// with doubled slashes or dot segments, is under the prefix, as Caddy's
// path matcher took it, even when it holds no "/." at all.
func TestUnderPrefixWithoutDot(t *testing.T) {
	for _, tc := range []struct {
		path, serve string
		under       bool
	}{
		{"/scim/v2/Users", "/scim/v2/Users", true},
		{"/SCIM/v2/Users", "/SCIM/v2/Users", true},
		{"/Scim/V2/Groups/1", "/Scim/V2/Groups/1", true},
		{"//scim/v2/Users", "/scim/v2/Users", true},
		{"/scim//v2/Users", "/scim/v2/Users", true},
		{"//SCIM//v2//", "/SCIM/v2/", true},
		{"/scim/v2", "", false},
		{"/scim/v20/Users", "", false},
		{"/app/scim/v2/Users", "", false},
		{"//app/scim/v2/Users", "", false},
	} {
		serve, under := urlpath.Under(tc.path, "/scim/v2/")
		if under != tc.under || (under && serve != tc.serve) {
			t.Errorf("Under(%q, /scim/v2/) = %q, %v; want %q, %v", tc.path, serve, under, tc.serve, tc.under)
		}
	}
}

// TestSegmentsPchar: every character RFC 3986 allows in a path segment
// (pchar, less percent-encoding) may be configured; others may not.
func TestSegmentsPchar(t *testing.T) {
	const unreserved = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
	for _, c := range unreserved + "!$&'()*+,;=" + ":@" {
		if seg := "a" + string(c) + "b"; !urlpath.Segments(seg) {
			t.Errorf("Segments(%q) = false, want true", seg)
		}
	}
	for _, c := range "%?#[]\\\"<>^`{|} \t\x00\u00e9" {
		if seg := "a" + string(c) + "b"; urlpath.Segments(seg) {
			t.Errorf("Segments(%q) = true, want false", seg)
		}
	}
}
