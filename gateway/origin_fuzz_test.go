package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// FuzzForwardedHost: whatever Host (one Go's server lets in) and
// X-Forwarded-Host/Proto a client or trusted proxy sends, a forwarded host
// RequestOrigin takes is exactly the authority of the URLs the gateway
// builds on it (redirect_uri, the ACS, the identity token's iss): no path,
// user info, query, fragment or zone slips in for a browser to read as
// another host.
func FuzzForwardedHost(f *testing.F) {
	for _, s := range [][3]string{
		{"app.example.com", "", ""}, {"app.example.com", "evil.example", "https"},
		{"a", "[2001:db8::66]/x.example.test", "https"}, {"a", "x.example, x.example", "http"},
		{"a", "x.example:443", "https"}, {"a", "x@y", ""}, {"a", "x.example:", ""}, {"a", "[::1]:8443", ""},
		{"a", "x.example:65536", ""}, {"a", "X.EXAMPLE.:0443", "https"}, {"a", "[fe80::1%25eth0]", ""},
		{"a", "[fe80::1%@evil#.example.test]", "https"},
	} {
		f.Add(s[0], s[1], s[2], true)
	}
	f.Fuzz(func(t *testing.T, host, xfh, xfp string, trusted bool) {
		if !httpguts.ValidHostHeader(host) {
			return // Go's server refuses it before any handler
		}
		r := httptest.NewRequest(http.MethodGet, "http://placeholder/", nil)
		r.Host = host
		r.Header.Set("X-Forwarded-Host", xfh)
		r.Header.Set("X-Forwarded-Proto", xfp)
		o, forwarded := gateway.RequestOrigin(r, trusted)
		h := o.Site.Host
		if h == "" || !forwarded {
			return
		}
		if strings.ContainsAny(h, " \t\r\n/\\@?#%,") {
			t.Fatalf("X-Forwarded-Host %q gave host %q", xfh, h)
		}
		built := o.Site.URL("/.sso/oidc/x/callback")
		u, err := url.Parse(built)
		if err != nil || u.Host != h || u.Path != "/.sso/oidc/x/callback" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("X-Forwarded-Host %q: host %q, URL %q parses to host %q path %q (%v)", xfh, h, built, u.Host, u.Path, err)
		}
	})
}
