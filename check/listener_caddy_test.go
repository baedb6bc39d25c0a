package check_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// TestCheckTLSListenerAgreesWithCaddy holds check's fail-open verdict on a
// forward-auth gateway on an https listener (a certificate the test made) to what a real
// Caddy answers a proxy that connects with the gateway's SNI, or none, and
// sends Host: evil.example: strict_sni_host, which TLS client auth turns
// on, refuses it with 421 before any route runs.
func TestCheckTLSListenerAgreesWithCaddy(t *testing.T) {
	for _, tc := range []struct{ name, globals, tls, site string }{
		{"no catch-all", "", "tls internal", ""},
		{"strict_sni_host on", "\tservers {\n\t\tstrict_sni_host on\n\t}\n", "tls internal", ""},
		// auto_https off leaves the site's own tls its TLS.
		{"strict_sni_host on, auto_https off", "\tauto_https off\n\tservers {\n\t\tstrict_sni_host on\n\t}\n", "tls internal", ""},
		{"client auth (strict SNI by default)", "", "tls internal {\n\t\tclient_auth {\n\t\t\tmode request\n\t\t}\n\t}", ""},
		{"strict_sni_host off with client auth", "\tservers {\n\t\tstrict_sni_host insecure_off\n\t}\n", "tls internal {\n\t\tclient_auth {\n\t\t\tmode request\n\t\t}\n\t}", ""},
		{"catch-all respond 403", "", "tls internal", "https://:PORT {\n\ttls internal\n\trespond 403\n}\n"},
		{"strict_sni_host on, handle_errors respond 200", "\tservers {\n\t\tstrict_sni_host on\n\t}\n", "tls internal", "https://:PORT {\n\ttls internal\n\trespond 403\n\thandle_errors {\n\t\trespond \"x\" 200\n\t}\n}\n"},
		// A host-less site's on-demand TLS completes a handshake for SNI
		// evil.example, whose Host then matches it, and header alone
		// answers nothing.
		{"strict_sni_host on, on-demand TLS for any name", "\ton_demand_tls {\n\t\task ASK\n\t}\n\tservers {\n\t\tstrict_sni_host on\n\t}\n", "tls internal", "https://:PORT {\n\ttls internal {\n\t\ton_demand\n\t}\n\theader X-A b\n}\n"},
		// So does one for a wildcard subject, whose site answers nothing.
		{"strict_sni_host on, on-demand TLS for a wildcard", "\ton_demand_tls {\n\t\task ASK\n\t}\n\tservers {\n\t\tstrict_sni_host on\n\t}\n", "tls internal", "https://*.example:PORT {\n\ttls internal {\n\t\ton_demand\n\t}\n\theader X-A b\n}\n"},
		// On-demand TLS for the gateway's host alone (its policy's
		// subject) gives SNI evil.example no certificate: Caddy refuses
		// the handshake.
		{"strict_sni_host on, on-demand TLS for the gateway's host", "\ton_demand_tls {\n\t\task ASK\n\t}\n\tservers {\n\t\tstrict_sni_host on\n\t}\n", "tls internal {\n\t\ton_demand\n\t}", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sso := testIdP(t)
			g := caddytest.NewGateway(t)
			sites := "https://app.localhost:PORT {\n\t" + tc.tls + "\n\tsso corp {\n\t\tmode auth_request\n\t}\n}\n" + tc.site
			cf := g.Caddyfile(sso, strings.ReplaceAll(sites, "PORT", fmt.Sprint(g.Port)))
			globals := tc.globals
			snis := []string{"app.localhost", ""}
			if strings.Contains(globals, "ASK") {
				globals = strings.Replace(globals, "ASK", caddytest.NewEchoUpstream(t).URL, 1) // it answers 200: allowed
				snis = append(snis, "evil.example")
			}
			autoHTTPS := "\tauto_https disable_redirects\n"
			if strings.Contains(globals, "auto_https") {
				autoHTTPS = ""
			}
			cf = strings.Replace(cf, "\tauto_https off\n", autoHTTPS+globals, 1)
			cf = strings.Replace(cf, fmt.Sprintf("http_port %d", g.Port), fmt.Sprintf("http_port %d", testport.For(t)), 1)
			cf = withTestCert(t, cf)
			r, out := checkAdapted(t, cf)
			g.Start(cf)
			awaitCertificate(g.Port, "app.localhost")
			var allowed []string
			for _, sni := range snis {
				client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: sni}}}
				for _, a := range allowedOtherHost(t, client, fmt.Sprintf("https://127.0.0.1:%d", g.Port), "/", "/verify") {
					allowed = append(allowed, fmt.Sprintf("SNI %q %s", sni, a))
				}
			}
			if reported := reportsFailOpen(r); reported != (len(allowed) > 0) {
				t.Errorf("check reports fail-open: %v; Caddy answers Host: evil.example with a 2xx on %v\n%s\n%s", reported, allowed, sites, out)
			}
		})
	}
}

// TestCheckAutoHTTPSRedirectAgreesWithCaddy: a forward-auth gateway named
// by host on Caddy's http_port, beside an https site. Automatic HTTPS
// appends a catch-all HTTP->HTTPS redirect to the gateway's server at
// start (a 308 for any Host), which the adapted config check reads does
// not hold; with disable_redirects, or with the gateway off http_port,
// Caddy answers other Hosts with an empty 200, and check reports it.
func TestCheckAutoHTTPSRedirectAgreesWithCaddy(t *testing.T) {
	const httpsSite = "https://other.localhost:%d {\n\ttls internal\n\trespond \"other\"\n}\n"
	for _, tc := range []struct {
		name, autoHTTPS, bind, other string
		offHTTPPort                  bool
	}{
		{"redirects", "", "", httpsSite, false},
		{"disable_redirects", "\tauto_https disable_redirects\n", "", httpsSite, false},
		// auto_https off: no redirect, though the site has TLS.
		{"auto_https off", "\tauto_https off\n", "", httpsSite, false},
		// A plain-http site on another port gets no TLS, so no redirect.
		{"a plain-http site on another port", "", "", "http://other.localhost:OTHER {\n\trespond \"other\"\n}\n", false},
		// A site without a host but with TLS connection policies (its
		// own certificate) gets a catch-all redirect all the same.
		{"a host-less https site", "", "", "https://:%d {\n\ttls internal\n\trespond \"other\"\n}\n", false},
		// The redirect listens on the https site's address at the HTTP
		// port: a wildcard one takes the gateway's specific address, and
		// another specific one does not.
		{"the gateway bound to 127.0.0.1", "", "\tbind 127.0.0.1\n", httpsSite, false},
		{"the gateway on 127.0.0.1, the https site on 127.0.0.2", "", "\tbind 127.0.0.1\n", strings.Replace(httpsSite, "tls internal", "bind 127.0.0.2\n\ttls internal", 1), false},
		// The redirect listens at the HTTP port, not at a gateway off it.
		{"the gateway off http_port", "", "", httpsSite, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sso := testIdP(t)
			g := caddytest.NewGateway(t)
			httpsPort := testport.For(t)
			other := strings.ReplaceAll(tc.other, "OTHER", fmt.Sprint(testport.For(t)))
			if strings.Contains(other, "%d") {
				other = fmt.Sprintf(other, httpsPort)
			}
			sites := fmt.Sprintf("http://app.localhost:%d {\n%s\tsso corp {\n\t\tmode auth_request\n\t}\n}\n", g.Port, tc.bind) + other
			cf := g.Caddyfile(sso, sites)
			cf = strings.Replace(cf, "\tauto_https off\n", fmt.Sprintf("\thttps_port %d\n%s", httpsPort, tc.autoHTTPS), 1)
			if tc.offHTTPPort {
				cf = strings.Replace(cf, fmt.Sprintf("http_port %d", g.Port), fmt.Sprintf("http_port %d", testport.For(t)), 1)
			}
			cf = withTestCert(t, cf)
			r, out := checkAdapted(t, cf)
			g.Start(cf)
			// Else Caddy may still be writing it as the test's temp dir goes.
			// auto_https off and plain http issue none.
			switch {
			case tc.autoHTTPS == "\tauto_https off\n" || !strings.HasPrefix(other, "https://"):
			case strings.Contains(other, "bind 127.0.0.2"):
				awaitCertificateAt(fmt.Sprintf("127.0.0.2:%d", httpsPort), "other.localhost")
			default:
				awaitCertificate(httpsPort, "other.localhost")
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			allowed := allowedOtherHost(t, client, g.Base, "/", "/verify")
			if reported := reportsFailOpen(r); reported != (len(allowed) > 0) {
				t.Errorf("check reports fail-open: %v; Caddy answers Host: evil.example with a 2xx on %v\n%s\n%s", reported, allowed, cf, out)
			}
		})
	}
}

// TestCheckVerifyAnswerAgreesWithCaddy: what wraps or follows a verify-mode
// sso handler must not turn its 401 for a request without a session into
// a 2xx, which nginx auth_request, Traefik and forward_auth take as signed
// in. An error-page intercept (Caddy's documented pattern: handle_response
// with file_server, which answers 200) that runs before sso, as in a route
// block, does; check reports it as an error. Outside a route block the
// directive order runs sso first. The gateway answers its verdicts itself,
// so the site's handle_errors leaves them alone.
func TestCheckVerifyAnswerAgreesWithCaddy(t *testing.T) {
	const errorPages = "(errors) {\n\tintercept {\n\t\t@err status 4xx 5xx\n\t\thandle_response @err {\n\t\t\troot * /etc\n\t\t\trewrite * /hostname\n\t\t\tfile_server\n\t\t}\n\t}\n}\n"
	const verify = "\tsso corp {\n\t\tmode auth_request\n\t\tbase_url https://app.example.com\n\t}\n"
	for _, tc := range []struct{ name, site string }{
		{"intercept imported beside sso", errorPages + "http://:PORT {\n\timport errors\n" + verify + "}\n"},
		{"intercept before sso in a route block", errorPages + "http://:PORT {\n\troute {\n\t\timport errors\n\t" + strings.ReplaceAll(verify, "\n\t", "\n\t\t") + "\t}\n}\n"},
		{"intercept after sso in a route block", errorPages + "http://:PORT {\n\troute {\n\t" + strings.ReplaceAll(verify, "\n\t", "\n\t\t") + "\t\timport errors\n\t}\n}\n"},
		{"handle_errors respond 200", "http://:PORT {\n" + verify + "\thandle_errors {\n\t\trespond \"Please sign in\" 200\n\t}\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sso := testIdP(t)
			g := caddytest.NewGateway(t)
			site := strings.ReplaceAll(tc.site, "PORT", fmt.Sprint(g.Port))
			cf := g.Caddyfile(sso, site)
			r, out := checkAdapted(t, cf)
			g.Start(cf)
			req, err := http.NewRequest(http.MethodGet, g.Base+"/verify", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Forwarded-Uri", "/private")
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			reported := false
			for _, f := range r.Problems {
				reported = reported || strings.Contains(f.Message, "answers through the intercept")
			}
			if in := resp.StatusCode/100 == 2; reported != in || r.Errors > 0 != in {
				t.Errorf("Caddy answers a verify request without a session with %d; check reports the intercept: %v, %d error(s)\n%s\n%s", resp.StatusCode, reported, r.Errors, site, out)
			}
		})
	}
}

// awaitCertificate waits, up to 10 s, until the TLS listener on port
// completes a handshake for sni: tls internal issues and stores the
// certificate in the background after Caddy starts.
func awaitCertificate(port int, sni string) {
	awaitCertificateAt(fmt.Sprintf("127.0.0.1:%d", port), sni)
}

// awaitCertificateAt is awaitCertificate for the listener at addr.
func awaitCertificateAt(addr, sni string) {
	for range 100 {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: sni})
		if err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCheckPlainHTTPStrictSNIAgreesWithCaddy: strict_sni_host refuses only
// requests that came over TLS (Caddy compares the Host with the TLS SNI),
// so a plain-http forward-auth gateway on a port other than http_port,
// under strict_sni_host on, still answers a request for another Host with
// an empty 200, which check must report.
func TestCheckPlainHTTPStrictSNIAgreesWithCaddy(t *testing.T) {
	for _, tc := range []struct {
		name, autoHTTPS string
		offHTTPPort     bool
	}{
		{"off http_port, auto_https off", "\tauto_https off\n", true},
		{"on http_port, automatic HTTPS on", "", false},
		{"off http_port, automatic HTTPS on (an http:// site's host is skipped: no TLS)", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plainHTTPStrictSNI(t, tc.autoHTTPS, tc.offHTTPPort)
		})
	}
}

// plainHTTPStrictSNI runs a plain-http gateway named by host (on a port
// other than http_port when offHTTPPort), with strict_sni_host on and the
// automatic HTTPS setting autoHTTPS, and holds check's fail-open verdict
// to what Caddy answers Host: evil.example.
func plainHTTPStrictSNI(t *testing.T, autoHTTPS string, offHTTPPort bool) {
	t.Helper()
	sso := testIdP(t)
	g := caddytest.NewGateway(t)
	sites := fmt.Sprintf("http://app.localhost:%d {\n\tsso corp {\n\t\tmode auth_request\n\t}\n}\n", g.Port)
	cf := g.Caddyfile(sso, sites)
	cf = strings.Replace(cf, "\tauto_https off\n", autoHTTPS+"\tservers {\n\t\tstrict_sni_host on\n\t}\n", 1)
	if offHTTPPort {
		cf = strings.Replace(cf, fmt.Sprintf("http_port %d", g.Port), fmt.Sprintf("http_port %d", testport.For(t)), 1)
	}
	r, out := checkAdapted(t, cf)
	g.Start(cf)
	allowed := allowedOtherHost(t, http.DefaultClient, g.Base, "/", "/verify")
	if reported := reportsFailOpen(r); reported != (len(allowed) > 0) {
		t.Errorf("check reports fail-open: %v; Caddy answers Host: evil.example with a 2xx on %v\n%s\n%s", reported, allowed, cf, out)
	}
}

// withTestCert makes the sites of cf that take tls internal take a
// certificate the test made instead (caddytest.SelfSignedCert), for every
// name and address the tests ask by: one issued in the background as the
// config starts races inside Caddy under -race. On-demand TLS keeps its
// issuer, which issues at the handshake, after the start.
func withTestCert(t *testing.T, cf string) string {
	t.Helper()
	certFile, keyFile, _ := caddytest.SelfSignedCert(t, "app.localhost", "other.localhost", "127.0.0.1", "127.0.0.2")
	const onDemand = "tls internal {\n\t\ton_demand"
	cf = strings.ReplaceAll(cf, onDemand, "ON_DEMAND")
	cf = strings.ReplaceAll(cf, "tls internal", "tls "+certFile+" "+keyFile)
	return strings.ReplaceAll(cf, "ON_DEMAND", onDemand)
}
