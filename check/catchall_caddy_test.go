package check_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestCheckCatchAllAgreesWithCaddy runs `caddy sso check` and a real Caddy
// on one Caddyfile: a forward-auth gateway named by host beside a
// host-less site. Check reports the listener as fail-open exactly when
// Caddy answers a request for another Host (Host: evil.example) with a
// 2xx on some path, which nginx, Traefik and forward_auth take as signed
// in (docs/forward-auth.md).
func TestCheckCatchAllAgreesWithCaddy(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	sso := "\t\tidp corp oidc {\n\t\t\tissuer " + op.Issuer + "\n\t\t\tclient_id app\n\t\t}\n"
	gateway := "http://app.localhost:PORT {\n\tsso corp {\n\t\tmode auth_request\n\t}\n}\n"
	for _, tc := range []struct{ name, site string }{
		{"no other site", ""},
		{"respond 403", "http://:PORT {\n\trespond 403\n}\n"},
		{"a site of every path", "http://:PORT/* {\n\trespond 403\n}\n"},
		{"a site of one path", "http://:PORT/health {\n\trespond 403\n}\n"},
		{"respond on one path", "http://:PORT {\n\trespond /health 403\n}\n"},
		{"handle on one path alone", "http://:PORT {\n\thandle /x {\n\t\trespond 403\n\t}\n}\n"},
		{"header alone", "http://:PORT {\n\theader X-A b\n}\n"},
		{"handle /*", "http://:PORT {\n\thandle /* {\n\t\trespond 403\n\t}\n}\n"},
		{"route /*", "http://:PORT {\n\troute /* {\n\t\trespond 403\n\t}\n}\n"},
		{"a named matcher of every path", "http://:PORT {\n\t@all path *\n\trespond @all 403\n}\n"},
		{"respond with a body (200)", "http://:PORT {\n\trespond \"nothing here\"\n}\n"},
		{"error 200", "http://:PORT {\n\terror 200\n}\n"},
		{"error", "http://:PORT {\n\terror 403\n}\n"},
		{"abort", "http://:PORT {\n\tabort\n}\n"},
		{"redir", "http://:PORT {\n\tredir https://example.com/\n}\n"},
		{"metrics", "http://:PORT {\n\tmetrics\n}\n"},
		{"php_fastcgi", "http://:PORT {\n\troot * /etc\n\tphp_fastcgi 127.0.0.1:1\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := caddytest.NewGateway(t)
			cf := g.Caddyfile(sso, strings.ReplaceAll(gateway+tc.site, "PORT", fmt.Sprint(g.Port)))
			r, _ := checkAdapted(t, cf)
			reported := false
			for _, f := range r.Problems {
				reported = reported || strings.Contains(f.Message, "answers only for")
			}
			g.Start(cf)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			var allowed []string
			for _, path := range []string{"/", "/x", "/verify", "/hostname"} { // /etc/hostname: a file that exists
				req, err := http.NewRequest(http.MethodGet, g.Base+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = "evil.example"
				resp, err := client.Do(req)
				if err != nil {
					continue // aborted: no answer, no "signed in"
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					allowed = append(allowed, fmt.Sprintf("%s %d", path, resp.StatusCode))
				}
			}
			if reported != (len(allowed) > 0) {
				t.Errorf("check reports fail-open: %v; Caddy answers Host: evil.example with a 2xx on %v\n%s", reported, allowed, tc.site)
			}
		})
	}
}
