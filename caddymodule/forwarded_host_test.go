package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestForwardedHostMustBeAHost: a trusted proxy's X-Forwarded-Host is
// vouched for by the site's host matcher, and Caddy's wildcard matcher
// compares dot-separated labels only: "[2001:db8::66]/x.example.test"
// passes *.example.test, and the sign-in URL and the SAML metadata (which
// a shared cache may keep) were built on the IPv6 address. A value that is
// not one host[:port] is vouched for by nothing; a list of one host
// repeated, as proxies that append send it, is that host.
func TestForwardedHostMustBeAHost(t *testing.T) {
	behindProxy := func(caddyfile string) string {
		return strings.Replace(caddyfile, "\tsso {\n", "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n\tsso {\n", 1)
	}
	// An IPv6 zone may hold any byte: a browser reads the first as host "evil".
	forged := []string{"[2001:db8::66]/x.example.test", "1572395042#.example.test", "a.example.test, b.example.test",
		"[fe80::1%@evil#.example.test]", "[2001:db8::66%25/x.example.test]"}
	t.Run("oidc", func(t *testing.T) {
		w := newOIDCWorld(t, "\t\t\tjit\n")
		port := strings.TrimPrefix(w.gw.base, "http://127.0.0.1:")
		w.sites = fmt.Sprintf("http://*.example.test:%s {\n\tsso test\n\treverse_proxy %s\n}\n", port, w.upstream.hostPort())
		w.gw.start(behindProxy(w.caddyfile()))
		redirectURI := func(xfh string) (*http.Response, string) {
			req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/page", nil)
			req.Host = "app.example.test:" + port
			req.Header.Set("Accept", "text/html")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Forwarded-Host", xfh)
			resp, err := newBrowser(t).noRedirects().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			return resp, loc.Query().Get("redirect_uri")
		}
		for _, ok := range []string{"app.example.test", "app.example.test, app.example.test", "app.example.test:8443"} {
			want := "https://" + strings.Split(ok, ",")[0] + "/.sso/oidc/test/callback"
			if resp, got := redirectURI(ok); got != want {
				t.Errorf("X-Forwarded-Host %q: %s, redirect_uri %q, want %q", ok, resp.Status, got, want)
			}
		}
		for _, xfh := range forged {
			if resp, got := redirectURI(xfh); resp.StatusCode != http.StatusInternalServerError || got != "" {
				t.Errorf("X-Forwarded-Host %q: %s, redirect_uri %q; want the refusal to build URLs (500, base_url_required)", xfh, resp.Status, got)
			}
		}
		// The log says it was the proxy's value, not a missing host
		// matcher, and names it.
		logs := w.gw.logs()
		if !strings.Contains(logs, "on a trusted proxy's X-Forwarded-Host") || !strings.Contains(logs, `"x_forwarded_host":"[2001:db8::66]/x.example.test"`) ||
			strings.Contains(logs, "the site has no host matcher") {
			t.Errorf("the refusal's log does not name the forwarded host:\n%s", logs)
		}
	})
	t.Run("saml metadata", func(t *testing.T) {
		w := newSAMLWorld(t, "\t\t\tjit\n")
		port := strings.TrimPrefix(w.gw.base, "http://127.0.0.1:")
		w.sites = fmt.Sprintf("http://*.example.test:%s {\n\tsso test\n\treverse_proxy %s\n}\n", port, w.upstream.hostPort())
		w.gw.start(behindProxy(w.caddyfile()))
		for _, xfh := range forged {
			req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/.sso/saml/test/metadata", nil)
			req.Host = "app.example.test:" + port
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Forwarded-Host", xfh)
			resp, err := newBrowser(t).noRedirects().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if body := readBody(t, resp); resp.StatusCode == http.StatusOK || strings.Contains(body, "EntityDescriptor") {
				t.Errorf("X-Forwarded-Host %q: metadata %s (Cache-Control %q): %.300s", xfh, resp.Status, resp.Header.Get("Cache-Control"), body)
			}
		}
	})
}
