//go:build unix

// Unix only: the Traefik build is serialized across test processes with flock (build_test.go).

// Package traefik_test runs this directory's example as shipped: a real
// Traefik (built from the Go module proxy, build_test.go) with traefik.yml
// and dynamic.yml in front of an app, with the Caddy of the Caddyfile
// answering its ForwardAuth requests, and a real OpenID Connect sign-in
// through it.
package traefik_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/exampletest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// appHost is the app's host name in the shipped files. The browser
// resolves it to 127.0.0.1, so that Traefik's Host rules stay as shipped.
const appHost = "app.example.com"

// startTraefik runs Traefik with the shipped traefik.yml and dynamic.yml,
// on the test's ports and certificate, until the test ends, and waits
// until it routes the app's host.
func startTraefik(t *testing.T, bin string, port, gwPort, appPort int, dynamic ...string) *x509.CertPool {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, cert := caddytest.SelfSignedCert(t, appHost)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	exampletest.Write(t, filepath.Join(dir, "dynamic.yml"), exampletest.Shipped(t, "dynamic.yml", append([]string{
		"127.0.0.1:9091", fmt.Sprintf("127.0.0.1:%d", gwPort),
		"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", appPort),
		"/etc/ssl/certs/app.example.com.pem", certFile,
		"/etc/ssl/private/app.example.com.key", keyFile}, dynamic...)...))
	// The test's own addition: no update check or usage report from a
	// test, and Traefik's log for a failure.
	exampletest.Write(t, filepath.Join(dir, "traefik.yml"), exampletest.Shipped(t, "traefik.yml",
		`address: ":443"`, fmt.Sprintf(`address: "127.0.0.1:%d"`, port),
		"/etc/traefik/dynamic.yml", filepath.Join(dir, "dynamic.yml"))+
		"\nglobal:\n  checkNewVersion: false\n  sendAnonymousUsage: false\nlog:\n  level: INFO\n")
	log, err := os.Create(filepath.Join(dir, "traefik.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--configFile="+filepath.Join(dir, "traefik.yml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "traefik.log"))
			t.Logf("traefik log:\n%s", out)
		}
	})
	// Traefik listens before its file provider's routers are in place:
	// wait for the gateway's answer on the app's host (a 404 until then).
	c := &http.Client{Transport: transport(port, pool), Timeout: 5 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("traefik exited: %v", err)
		default:
		}
		resp, err := c.Get(fmt.Sprintf("https://%s:%d/.sso/whoami", appHost, port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				return pool
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("traefik did not route %s: %v", appHost, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// transport connects to Traefik for appHost, trusting pool.
func transport(port int, pool *x509.CertPool) *http.Transport {
	var d net.Dialer
	return &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == fmt.Sprintf("%s:%d", appHost, port) {
				addr = fmt.Sprintf("127.0.0.1:%d", port)
			}
			return d.DialContext(ctx, network, addr)
		},
	}
}

// startExample runs the IdP, the app, the shipped Caddyfile (with the
// replacements of caddyfile) and Traefik (dynamic.yml with those of
// dynamic), and returns the site's URL and a
// browser that reaches it.
func startExample(t *testing.T, caddyfile, dynamic []string) (string, *caddytest.Browser) {
	t.Helper()
	bin := traefikBinary(t)
	port := testport.For(t)
	site := fmt.Sprintf("https://%s:%d", appHost, port)
	exampletest.StartIdP(t, site, "traefik-app", "traefik-secret")
	app := caddytest.NewEchoUpstream(t)
	g := caddytest.NewGateway(t)

	// The shipped Caddyfile, on the test's ports and store.
	g.Start(exampletest.Shipped(t, "Caddyfile", append(exampletest.OnTestGateway(g, site), caddyfile...)...))
	pool := startTraefik(t, bin, port, g.Port, exampletest.Port(t, app.URL), dynamic...)

	b := caddytest.NewBrowser(t)
	b.Client.Transport = transport(port, pool)
	return site, b
}

// TestTraefikExample: without a session a navigation through Traefik is
// sent to sign in and an API request refused; a sign-in through Traefik
// comes back to the page asked for; the app receives the gateway's
// identity headers and none of those a client sends, in any spelling, and
// no session cookie, but its own cookies and Authorization; signing out
// through Traefik ends the session.
func TestTraefikExample(t *testing.T) {
	site, b := startExample(t, nil, nil)

	resp := navigate(t, b, site+"/reports?year=2026")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != site+"/.sso/login?return_to=%2Freports%3Fyear%3D2026" {
		t.Errorf("without a session: %s, Location %q, want a redirect to sign in", resp.Status, loc)
	}
	resp = b.Get(site+"/api/reports", "Accept", "application/json", "X-Forwarded-User", "mallory")
	if body := caddytest.ReadBody(t, resp); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, `"headers"`) {
		t.Errorf("an API request without a session: %s %s, want 401", resp.Status, body)
	}

	user := exampletest.SignInAda(t, b, site)

	// Spoofed identity headers, in any spelling (aliasHeadersStrategy
	// deletes those with "_" or "."), do not reach the app; nor does the
	// session cookie; the app's own cookies and Authorization do.
	saw := caddytest.UpstreamSaw(t, b.Get(site+"/again",
		"X-Forwarded-User", "mallory", "x-forwarded-groups", "admins", "Remote-User", "mallory",
		"X-Auth-Request-Email", "mallory@example.com", "X_Forwarded_User", "mallory", "X.Forwarded.Email", "mallory@example.com",
		"X-Forwarded-Access-Token", "forged", "Cookie", "theme=dark", "Authorization", "Basic YXBwOnB3"))
	if saw.Header("X-Forwarded-User") != user || saw.Header("X-Forwarded-Groups") != "eng" {
		t.Errorf("spoofed identity: user %q groups %q", saw.Header("X-Forwarded-User"), saw.Header("X-Forwarded-Groups"))
	}
	for name := range saw.Headers {
		if n := strings.ToLower(name); n == "remote-user" || n == "x-auth-request-email" || n == "x-forwarded-access-token" ||
			strings.ContainsAny(n, "_.") {
			t.Errorf("the app received the spoofed %s: %v", name, saw.Headers[name])
		}
	}
	if c := saw.Header("Cookie"); !strings.HasPrefix(c, "theme=dark") || strings.Contains(c, "sso_session") {
		t.Errorf("the app's Cookie header = %q, want the browser's without the gateway's", c)
	}
	if a := saw.Header("Authorization"); a != "Basic YXBwOnB3" {
		t.Errorf("the app's own Authorization arrived as %q", a)
	}

	// An app cookie of 6 KB: the gateway's answer echoes it in Cookie.
	exampletest.CheckLargeAppCookie(t, b, site, user)

	// Sign out through Traefik: the form posts with the site's origin.
	exampletest.SignOut(t, b, site)
	resp = navigate(t, b, site+"/reports")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != site+"/.sso/login?return_to=%2Freports" {
		t.Errorf("after signing out: %s, Location %q, want a redirect to sign in", resp.Status, loc)
	}
	b.Refused(site + "/reports")

	// A long query (1.9 KB) without a session: the browser is sent to
	// sign in, and reaches the app (at /: a return path this long does
	// not fit the gateway's flow cookie).
	page := "/search?" + strings.Repeat("a=b&", 470)
	resp = navigate(t, b, site+page)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != site+"/.sso/login?return_to="+url.QueryEscape(page) {
		t.Fatalf("a long query without a session: %s, Location of %d bytes, want a redirect to sign in", resp.Status, len(loc))
	}
	if saw := caddytest.UpstreamSaw(t, b.SignIn(site+page, "ada", "ada-pw")); saw.Header("X-Forwarded-User") != user {
		t.Errorf("signed in from a long query, the app got user %q", saw.Header("X-Forwarded-User"))
	}
}

// navigate loads a page as a browser does (Accept: text/html), without
// following a redirect, and returns the response, its body read.
func navigate(t *testing.T, b *caddytest.Browser, rawURL string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	resp, err := b.NoRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	caddytest.ReadBody(t, resp)
	return resp
}

// TestTraefikAuthorizationHeader: on a route with set_authorization_header
// (and pass_access_token), with Authorization added to authResponseHeaders
// as docs/forward-auth.md says, the app receives the gateway's Bearer, not
// the client's.
func TestTraefikAuthorizationHeader(t *testing.T) {
	site, b := startExample(t, []string{
		"\t\tmode forward_auth\n", "\t\tmode forward_auth\n\t\tset_authorization_header\n\t\tpass_access_token\n",
	}, []string{
		"          - Cookie\n", "          - Cookie\n          - Authorization\n",
	})
	saw := caddytest.UpstreamSaw(t, b.SignIn(site+"/", "ada", "ada-pw"))
	token := saw.Header("X-Forwarded-Access-Token")
	if token == "" || saw.Header("Authorization") != "Bearer "+token {
		t.Fatalf("after sign-in the app got Authorization %q, access token %q", saw.Header("Authorization"), token)
	}
	saw = caddytest.UpstreamSaw(t, b.Get(site+"/api", "Authorization", "Bearer forged", "X-Forwarded-Access-Token", "forged"))
	if saw.Header("Authorization") != "Bearer "+token || saw.Header("X-Forwarded-Access-Token") != token {
		t.Errorf("with a forged Authorization the app got %q, access token %q", saw.Header("Authorization"), saw.Header("X-Forwarded-Access-Token"))
	}
}

// TestTraefikExampleCoversEveryIdentityHeader: authResponseHeaders lists
// every header no client may send, and Cookie; Traefik deletes each from
// the request before copying the gateway's.
func TestTraefikExampleCoversEveryIdentityHeader(t *testing.T) {
	raw, err := os.ReadFile("dynamic.yml")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	_, list, ok := strings.Cut(conf, "authResponseHeaders:\n")
	if !ok {
		t.Fatal("dynamic.yml has no authResponseHeaders")
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(list, "\n") {
		item, ok := strings.CutPrefix(strings.TrimSpace(line), "- ")
		if !ok {
			break
		}
		listed[strings.ToLower(item)] = true
	}
	for _, h := range append(gateway.ProtectedHeaders(), "Cookie") {
		if !listed[strings.ToLower(h)] {
			t.Errorf("authResponseHeaders lacks %s", h)
		}
	}
	for _, want := range []string{
		`address: "http://127.0.0.1:9091/verify"`,
		"trustForwardHeader: false",
		"middlewares: [sso]",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("dynamic.yml lacks %s", want)
		}
	}
	// The gateway answers Traefik alone: on loopback's 127.0.0.1, not on
	// every interface (the nginx example's test dials another address).
	if caddyfile, err := os.ReadFile("Caddyfile"); err != nil || !regexp.MustCompile(`(?m)^\tbind 127\.0\.0\.1$`).Match(caddyfile) {
		t.Errorf("the Caddyfile's gateway site lacks bind 127.0.0.1 (%v)", err)
	}
	// The gateway's own router must outrank the app's (Traefik orders
	// routers by rule length), or /.sso/ would need a session first.
	rules := regexp.MustCompile(`(?m)^\s+rule: "(.*)"$`).FindAllStringSubmatch(conf, -1)
	if len(rules) != 2 || !strings.Contains(rules[0][1], "PathPrefix(`/.sso/`)") || len(rules[0][1]) <= len(rules[1][1]) {
		t.Errorf("routers: %v", rules)
	}
}
