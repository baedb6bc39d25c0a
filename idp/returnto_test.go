package idp_test

import (
	"bufio"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestLocalPath runs every open-redirect payload of the shared list through
// LocalPath: each must come out as "/" or unchanged, and resolve on the site.
func TestLocalPath(t *testing.T) {
	f, err := os.Open("../../shared/testdata/open-redirect-payloads.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	site, _ := url.Parse("https://app.example.com/page")
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		p := sc.Text()
		got := idp.LocalPath(p)
		if got != "/" && got != p {
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
	for _, ok := range []string{"/", "/reports?year=2026", "/a/b#frag", "/%E2%9C%93", "/search?q=a%2Fb"} {
		if got := idp.LocalPath(ok); got != ok {
			t.Errorf("local path %q rewritten to %q", ok, got)
		}
	}
}
