package idp_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/redirecttest"
)

var braces = strings.NewReplacer("{", "%7B", "}", "%7D")

// TestLocalPath runs every open-redirect payload of the shared list through
// LocalPath: each must come out as "/" or unchanged, and resolve on the site.
func TestLocalPath(t *testing.T) {
	site, _ := url.Parse("https://app.example.com/page")
	n := 0
	for _, p := range redirecttest.Payloads() {
		n++
		got := idp.LocalPath(p)
		if got != "/" && got != braces.Replace(p) {
			t.Errorf("%q rewritten to %q", p, got)
		}
		u, err := site.Parse(got)
		if err != nil || u.Host != site.Host || u.Scheme != site.Scheme || strings.HasPrefix(got, "//") {
			t.Errorf("%q gives %q, which leaves the site", p, got)
		}
	}
	if n < 800 {
		t.Fatalf("read %d payloads", n)
	}
	// Braces are percent-encoded: Caddy's templates, run over a page that
	// repeats the path, would execute {{…}}.
	if got, want := idp.LocalPath("/x{{env}}?q={a}"), "/x%7B%7Benv%7D%7D?q=%7Ba%7D"; got != want {
		t.Errorf("braces: got %q, want %q", got, want)
	}
	// An app's own '%' and '\\' stay: decoding ends at a '%' that starts
	// no escape, and the query cannot move the path to another host.
	// A backslash in the path is refused anywhere in it, not only after
	// the first '/': browsers and some servers read it as '/', so
	// "/a\..\..\x" may climb out of the path asked for.
	// A stray '%' does not end the decoding before a deeper layer.
	for _, bad := range []string{"/a\\..\\..\\x", "/a/b\\c", "/a%5C..%5Cx?q=1",
		"/%252F%252Fevil.example%25", "/%255Cevil.example%25", "/%25252F%25252Fevil.example%2525", "/%2F%2Fevil.example%zz",
		// An escape that ends the path is decoded too.
		"/a%5C",
		// A '%' kept in one round may start an escape in the next.
		"/%25%2532F%25%2532Fevil.example"} {
		if got := idp.LocalPath(bad); got != "/" {
			t.Errorf("%q kept as %q, want \"/\"", bad, got)
		}
	}
	// Only a rooted path of at most MaxLocalPath bytes is kept: a
	// relative one would resolve against the callback's URL.
	for _, bad := range []string{"", "reports", "evil.example/x", "?next=/x", "/" + strings.Repeat("a", idp.MaxLocalPath)} {
		if got := idp.LocalPath(bad); got != "/" {
			t.Errorf("%.40q kept as %.40q", bad, got)
		}
	}
	if long := "/" + strings.Repeat("a", idp.MaxLocalPath-1); idp.LocalPath(long) != long {
		t.Errorf("a %d-byte path was not kept", len(long))
	}
	for _, ok := range []string{"/", "/reports?year=2026", "/a/b#frag", "/%E2%9C%93", "/search?q=a%2Fb",
		"/search?q=100%25", "/search?q=50%25+off", "/files?path=C%3A%5Cdata", "/files?path=C:\\data", "/sale/100%25",
		// Escapes nested up to three deep settle within the rounds allowed.
		"/100%2525", "/files/a%252520b"} {
		if got := idp.LocalPath(ok); got != ok {
			t.Errorf("local path %q rewritten to %q", ok, got)
		}
	}
}
