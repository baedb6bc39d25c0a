package check_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/check"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestCheckCatchAllAgreesWithCaddy runs `caddy sso check` and a real Caddy
// on one Caddyfile: a forward-auth gateway named by host beside a
// host-less site. Check reports the listener as fail-open exactly when
// Caddy answers a request for another Host (Host: evil.example) with a
// 2xx on some path, which nginx, Traefik and forward_auth take as signed
// in (docs/forward-auth.md). Caddy hands the error directive's error to
// the error routes (handle_errors), and intercept rewrites what the
// handlers after it answer: both can make a refusal a 2xx. A 1xx is no
// final answer: Caddy sends a 200 after it.
func TestCheckCatchAllAgreesWithCaddy(t *testing.T) {
	sso := testIdP(t)
	errorPages := caddytest.NewEchoUpstream(t) // an error-pages service: it answers 200
	page := "\t\t\troot * /etc\n\t\t\trewrite * /hostname\n\t\t\tfile_server"
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
		{"invoke of a refusing named route", "&(deny) {\n\trespond 403\n}\nhttp://:PORT {\n\tinvoke deny\n}\n"},
		{"handle_path /*", "http://:PORT {\n\thandle_path /* {\n\t\trespond 403\n\t}\n}\n"},
		{"route: handle on one path, then respond 403", "http://:PORT {\n\troute {\n\t\thandle /x {\n\t\t\theader X-A b\n\t\t}\n\t\trespond 403\n\t}\n}\n"},
		{"redir html (200)", "http://:PORT {\n\tredir https://example.com/ html\n}\n"},
		{"respond 103 (Early Hints, then 200)", "http://:PORT {\n\trespond 103\n}\n"},
		{"respond 100", "http://:PORT {\n\trespond 100\n}\n"},
		{"error 103", "http://:PORT {\n\terror 103\n}\n"},
		{"error, handle_errors respond 200", "http://:PORT {\n\terror 403\n\thandle_errors {\n\t\trespond \"denied\" 200\n\t}\n}\n"},
		{"error, handle_errors reverse_proxy (error pages)", "http://:PORT {\n\terror 403\n\thandle_errors {\n\t\treverse_proxy " + errorPages.HostPort() + "\n\t}\n}\n"},
		{"error, handle_errors respond (the error's status)", "http://:PORT {\n\terror 403\n\thandle_errors {\n\t\trespond \"denied\"\n\t}\n}\n"},
		{"error, handle_errors file_server (the error's status)", "http://:PORT {\n\terror 403\n\thandle_errors {\n" + page + "\n\t}\n}\n"},
		{"error in handle, handle_errors 403 respond 204", "http://:PORT {\n\thandle {\n\t\terror 403\n\t}\n\thandle_errors 403 {\n\t\trespond 204\n\t}\n}\n"},
		{"error, handle_errors of another status respond 204", "http://:PORT {\n\terror 403\n\thandle_errors 404 {\n\t\trespond 204\n\t}\n}\n"},
		{"respond 403, intercept with a file_server page", "http://:PORT {\n\trespond 403\n\tintercept {\n\t\t@denied status 403\n\t\thandle_response @denied {\n" + page + "\n\t\t}\n\t}\n}\n"},
		{"respond 403, intercept with a file_server page of status 403", "http://:PORT {\n\trespond 403\n\tintercept {\n\t\t@denied status 403\n\t\thandle_response @denied {\n" + page + " {\n\t\t\t\tstatus 403\n\t\t\t}\n\t\t}\n\t}\n}\n"},
		{"respond 403, intercept replacing the status with 200", "http://:PORT {\n\trespond 403\n\tintercept {\n\t\treplace_status 200\n\t}\n}\n"},
		{"error 200, then respond 403 (error runs first)", "http://:PORT {\n\terror 200\n\trespond 403\n}\n"},
		{"error without a status (500)", "http://:PORT {\n\terror \"denied\"\n}\n"},
		{"respond 300", "http://:PORT {\n\trespond 300\n}\n"},
		{"respond 403, intercept aborting", "http://:PORT {\n\trespond 403\n\tintercept {\n\t\thandle_response {\n\t\t\tabort\n\t\t}\n\t}\n}\n"},
		{"error, handle_errors metrics (200)", "http://:PORT {\n\terror 403\n\thandle_errors {\n\t\tmetrics\n\t}\n}\n"},
		{"error, another host's handle_errors respond 200", "http://other.localhost:PORT {\n\thandle_errors {\n\t\trespond \"x\" 200\n\t}\n}\nhttp://:PORT {\n\terror 403\n}\n"},
		{"a host-less verify-mode sso", "http://:PORT {\n\tsso corp {\n\t\tmode auth_request\n\t}\n}\n"},
		{"forward_auth to an upstream that lets in", "http://:PORT {\n\tforward_auth " + errorPages.HostPort() + " {\n\t\turi /\n\t}\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := caddytest.NewGateway(t)
			cf := g.Caddyfile(sso, strings.ReplaceAll(gateway+tc.site, "PORT", fmt.Sprint(g.Port)))
			r, _ := checkAdapted(t, cf)
			reported := reportsFailOpen(r)
			g.Start(cf)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			allowed := allowedOtherHost(t, client, g.Base, "/", "/x", "/verify", "/hostname") // /etc/hostname: a file that exists
			if reported != (len(allowed) > 0) {
				t.Errorf("check reports fail-open: %v; Caddy answers Host: evil.example with a 2xx on %v\n%s", reported, allowed, tc.site)
			}
		})
	}
}

// testIdP starts an OIDC provider for check's probes and returns the
// idp line of the sso global option for it.
func testIdP(t *testing.T) string {
	t.Helper()
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	return "\t\tidp corp oidc {\n\t\t\tissuer " + op.Issuer + "\n\t\t\tclient_id app\n\t\t}\n"
}

// reportsFailOpen reports whether check reports a forward-auth listener
// whose other Hosts Caddy answers with a 2xx.
func reportsFailOpen(r *check.Report) bool {
	for _, f := range r.Problems {
		if strings.Contains(f.Message, "answers only for") {
			return true
		}
	}
	return false
}

// allowedOtherHost asks for each of paths at base with Host: evil.example,
// a Host no site names, as a forward-auth proxy would pass it on, and
// returns those Caddy answered with a 2xx, which the proxy takes as signed
// in. A request that gets no answer (aborted, no certificate for the SNI)
// is no "signed in".
func allowedOtherHost(t *testing.T, client *http.Client, base string, paths ...string) []string {
	t.Helper()
	var allowed []string
	for _, path := range paths {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "evil.example"
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			allowed = append(allowed, fmt.Sprintf("%s %d", path, resp.StatusCode))
		}
	}
	return allowed
}
