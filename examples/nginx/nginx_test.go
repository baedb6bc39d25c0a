// Package nginx_test runs this directory's example as shipped: a real
// nginx (Debian's package) with app.conf and its two snippets, in front of
// an app, with the Caddy of the Caddyfile answering its auth_request
// subrequests, and a real OpenID Connect sign-in through it.
package nginx_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/ci"
	"github.com/caddy-sso/caddy-sso/internal/exampletest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// nginxBinary finds Debian's nginx (in /usr/sbin, often not on a user's
// PATH). Without it the test is skipped, except in CI, where .ci/run
// installs it.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if ci.Running() {
		t.Fatal("nginx is not installed; .ci/run installs it")
	}
	t.Skip("nginx is not installed (apt-get install -y nginx)")
	return ""
}

// startNginx runs nginx with the shipped app.conf (with the replacements
// of appConf) and snippets in a prefix of its own (master process off, so
// it neither daemonizes nor switches user), until the test ends.
func startNginx(t *testing.T, bin string, port, gwPort, appPort int, appConf ...string) *x509.CertPool {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, cert := caddytest.SelfSignedCert(t, "127.0.0.1")
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	exampletest.Write(t, filepath.Join(dir, "snippets", "sso-endpoints.conf"), exampletest.Shipped(t, "sso-endpoints.conf"))
	exampletest.Write(t, filepath.Join(dir, "snippets", "sso-protect.conf"), exampletest.Shipped(t, "sso-protect.conf"))
	exampletest.Write(t, filepath.Join(dir, "app.conf"), exampletest.Shipped(t, "app.conf", append([]string{
		"server 127.0.0.1:9091;", fmt.Sprintf("server 127.0.0.1:%d;", gwPort),
		"server 127.0.0.1:8080;", fmt.Sprintf("server 127.0.0.1:%d;", appPort),
		"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port),
		"/etc/ssl/certs/app.example.com.pem", certFile,
		"/etc/ssl/private/app.example.com.key", keyFile}, appConf...)...))
	exampletest.Write(t, filepath.Join(dir, "nginx.conf"), fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events {
	worker_connections 64;
}
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	include app.conf;
}
`, dir))
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", dir + "/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")}
	if out, err := exec.Command(bin, append(args, "-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", log)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return pool
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start listening: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startExample runs the IdP, the app, the shipped Caddyfile (with the
// replacements of caddyfile) and nginx (app.conf with those of appConf),
// and returns the site's URL and a browser that trusts it.
func startExample(t *testing.T, caddyfile, appConf []string) (string, *caddytest.Browser) {
	t.Helper()
	site, b, _ := startExampleWith(t, func(g *caddytest.Gateway, site string) string {
		return exampletest.Shipped(t, "Caddyfile", append(exampletest.OnTestGateway(g, site), caddyfile...)...)
	}, "", appConf)
	return site, b
}

// startExampleWith is startExample with the gateway configuration that
// gateway returns for the gateway g and the app's address site (the
// shipped Caddyfile, or one that docs/forward-auth.md gives), and the app
// at the URL app ("": an EchoUpstream), also returning the gateway.
func startExampleWith(t *testing.T, gateway func(g *caddytest.Gateway, site string) string, app string, appConf []string) (string, *caddytest.Browser, *caddytest.Gateway) {
	t.Helper()
	bin := nginxBinary(t)
	port := testport.For(t)
	site := fmt.Sprintf("https://127.0.0.1:%d", port)
	exampletest.StartIdP(t, site, "nginx-app", "nginx-secret")
	if app == "" {
		app = caddytest.NewEchoUpstream(t).URL
	}
	g := caddytest.NewGateway(t)

	g.Start(gateway(g, site))
	pool := startNginx(t, bin, port, g.Port, exampletest.Port(t, app), appConf...)

	b := caddytest.NewBrowser(t)
	b.Client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return site, b, g
}

// TestNginxExample: a sign-in through nginx comes back to the page asked
// for; the app receives the gateway's identity headers and none of those a
// client sends, and no session cookie, but its own Authorization; signing
// out through nginx ends the session.
func TestNginxExample(t *testing.T) {
	site, b := startExample(t, nil, []string{
		// A location with the Authorization lines of sso-protect.conf
		// on a route without set_authorization_header.
		"\tlocation / {\n", "\tlocation /bearer-lines/ {\n" + protectLines + authorizationLines(t) + "\t\tproxy_pass http://app;\n\t}\n\n\tlocation / {\n",
	})
	user := exampletest.SignInAda(t, b, site)

	// Spoofed identity headers, in any spelling, do not reach the app;
	// nor does the session cookie; the app's own cookies do.
	saw := caddytest.UpstreamSaw(t, b.Get(site+"/again",
		"X-Forwarded-User", "mallory", "x-forwarded-groups", "admins", "Remote-User", "mallory",
		"X-Auth-Request-Email", "mallory@example.com", "X_Forwarded_User", "mallory", "Cookie", "theme=dark"))
	if saw.Header("X-Forwarded-User") != user || saw.Header("X-Forwarded-Groups") != "eng" {
		t.Errorf("spoofed identity: user %q groups %q", saw.Header("X-Forwarded-User"), saw.Header("X-Forwarded-Groups"))
	}
	for name := range saw.Headers {
		if n := strings.ToLower(name); n == "remote-user" || n == "x-auth-request-email" || strings.Contains(n, "_") {
			t.Errorf("the app received the spoofed %s: %v", name, saw.Headers[name])
		}
	}
	if c := saw.Header("Cookie"); !strings.HasPrefix(c, "theme=dark") || strings.Contains(c, "sso_session") {
		t.Errorf("the app's Cookie header = %q, want the browser's without the gateway's", c)
	}

	// The app's own Authorization passes the shipped snippet; the lines
	// for set_authorization_header would remove it on a route without
	// the setting (an empty proxy_set_header value drops the header),
	// which is why they are not in the snippet.
	if a := caddytest.UpstreamSaw(t, b.Get(site+"/again", "Authorization", "Basic YXBwOnB3")).Header("Authorization"); a != "Basic YXBwOnB3" {
		t.Errorf("the app's own Authorization arrived as %q", a)
	}
	if a := caddytest.UpstreamSaw(t, b.Get(site+"/bearer-lines/", "Authorization", "Basic YXBwOnB3")).Header("Authorization"); a != "" {
		t.Errorf("with the Authorization lines on a route without set_authorization_header the app got %q, want none", a)
	}

	// An app cookie of 6 KB: the verify answer echoes it in Cookie and
	// outgrows nginx's default 4k header buffer (a 500 then).
	exampletest.CheckLargeAppCookie(t, b, site, user)

	// nginx picks location /.sso/ on the cleaned path and proxy_pass sends
	// the path as the client wrote it: the gateway serves it as its
	// endpoint, never answers it as the forward-auth question only nginx
	// may ask (its 200 carries the identity and echoes the app's HttpOnly
	// cookies, for any script of the site to read).
	for _, p := range []string{"//.sso/x", "/./.sso/x", "/a/../.sso/x", "/%2E/.sso/x"} {
		resp := b.Get(site+p, "Accept", "*/*", "Sec-Fetch-Mode", "cors", "Cookie", "app_sid=httponly")
		caddytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Forwarded-User") != "" || resp.Header.Get("Cookie") != "" {
			t.Errorf("GET %s: %s, X-Forwarded-User %q, Cookie %q; want the endpoints' 404, nothing of the verify answer",
				p, resp.Status, resp.Header.Get("X-Forwarded-User"), resp.Header.Get("Cookie"))
		}
	}

	// HTTP/1.0 without Host, with the session: the gateway and the app
	// get the server_name as Host ($host), not an empty one.
	u, _ := url.Parse(site)
	var session []string
	for _, c := range b.Jar.Cookies(u) {
		session = append(session, c.Name+"="+c.Value)
	}
	if resp := http10WithoutHost(t, u.Host, pool(b), "/old-client", strings.Join(session, "; ")); resp.StatusCode != http.StatusOK {
		t.Errorf("HTTP/1.0 without Host: %s, want the app's answer", resp.Status)
	} else if saw := caddytest.UpstreamSaw(t, resp); saw.Header("X-Forwarded-User") != user {
		t.Errorf("HTTP/1.0 without Host: the app got user %q", saw.Header("X-Forwarded-User"))
	}

	// Sign out through nginx: the form posts with the site's origin.
	exampletest.SignOut(t, b, site)
	resp, err := b.NoRedirects().Get(site + "/reports")
	if err != nil {
		t.Fatal(err)
	}
	caddytest.ReadBody(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != site+"/.sso/login?return_to=%2Freports" {
		t.Errorf("after signing out: %s, Location %q, want a redirect to sign in", resp.Status, loc)
	}

	// A long query (1.9 KB; the gateway keeps return paths up to 2 KB)
	// without a session: the 401 carries the login URL, where the query
	// doubles escaped, twice (Location, WWW-Authenticate), over 4k; the
	// browser must still be sent to sign in, and reach the app (at /:
	// a return path this long does not fit the gateway's flow cookie).
	page := "/search?" + strings.Repeat("a=b&", 470)
	resp, err = b.NoRedirects().Get(site + page)
	if err != nil {
		t.Fatal(err)
	}
	caddytest.ReadBody(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != site+"/.sso/login?return_to="+url.QueryEscape(page) {
		t.Fatalf("a long query without a session: %s, Location of %d bytes, want a redirect to sign in", resp.Status, len(loc))
	}
	if saw := caddytest.UpstreamSaw(t, b.SignIn(site+page, "ada", "ada-pw")); saw.Header("X-Forwarded-User") != user {
		t.Errorf("signed in from a long query, the app got user %q", saw.Header("X-Forwarded-User"))
	}
}

// TestNginxAuthorizationHeader: on a route with set_authorization_header
// (and pass_access_token) behind a location with sso-protect.conf's
// Authorization lines, the app receives the gateway's Bearer, not the
// client's.
func TestNginxAuthorizationHeader(t *testing.T) {
	site, b := startExample(t, []string{
		"\t\tmode auth_request\n", "\t\tmode auth_request\n\t\tset_authorization_header\n\t\tpass_access_token\n",
	}, []string{
		protectLines, protectLines + authorizationLines(t),
	})
	saw := caddytest.UpstreamSaw(t, b.SignIn(site+"/", "ada", "ada-pw"))
	token := saw.Header("X-Forwarded-Access-Token")
	if token == "" || saw.Header("Authorization") != "Bearer "+token {
		t.Fatalf("after sign-in the app got Authorization %q, access token %q", saw.Header("Authorization"), token)
	}
	saw = caddytest.UpstreamSaw(t, b.Get(site+"/api", "Authorization", "Bearer forged"))
	if saw.Header("Authorization") != "Bearer "+token {
		t.Errorf("with a forged Authorization the app got %q", saw.Header("Authorization"))
	}
}

// protectLines is app.conf's include of sso-protect.conf.
const protectLines = "\t\tinclude snippets/sso-protect.conf;\n"

// authorizationLines are the commented lines of sso-protect.conf for a
// route with set_authorization_header, uncommented.
func authorizationLines(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^#\t(auth_request_set \$sso_authorization \$upstream_http_authorization;)\n#\t(proxy_set_header Authorization \$sso_authorization;)$`).
		FindStringSubmatch(exampletest.Shipped(t, "sso-protect.conf"))
	if m == nil {
		t.Fatal("sso-protect.conf no longer has the commented Authorization lines")
	}
	return "\t\t" + m[1] + "\n\t\t" + m[2] + "\n"
}

// pool is the certificate pool b trusts.
func pool(b *caddytest.Browser) *x509.CertPool {
	return b.Client.Transport.(*http.Transport).TLSClientConfig.RootCAs
}

// http10WithoutHost sends an HTTP/1.0 GET without a Host header, as old
// clients do, and returns the response, its body read.
func http10WithoutHost(t *testing.T, addr string, roots *x509.CertPool, path, cookie string) *http.Response {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nCookie: %s\r\n\r\n", path, cookie); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

// TestNginxSnippetCoversEveryIdentityHeader: sso-protect.conf takes every
// header no client may send from the gateway's answer (or removes it), so
// that the gateway's list and the example cannot drift apart.
func TestNginxSnippetCoversEveryIdentityHeader(t *testing.T) {
	conf := exampletest.Shipped(t, "sso-protect.conf")
	set := regexp.MustCompile(`(?m)^proxy_set_header ([A-Za-z-]+) \$sso_([a-z_]+);$`)
	from := regexp.MustCompile(`(?m)^auth_request_set \$sso_([a-z_]+) \$upstream_http_([a-z_]+);$`)
	source := map[string]string{}
	for _, m := range from.FindAllStringSubmatch(conf, -1) {
		source[m[1]] = m[2]
	}
	covered := map[string]bool{}
	for _, m := range set.FindAllStringSubmatch(conf, -1) {
		want := strings.ReplaceAll(strings.ToLower(m[1]), "-", "_")
		if source[m[2]] != want {
			t.Errorf("%s is set from $sso_%s, which is not the gateway's %s", m[1], m[2], m[1])
		}
		covered[strings.ToLower(m[1])] = true
	}
	for _, h := range append(gateway.ProtectedHeaders(), "Cookie") {
		if !covered[strings.ToLower(h)] {
			t.Errorf("sso-protect.conf does not take %s from the gateway's answer", h)
		}
	}
	if !slices.Contains(strings.Fields(conf), "auth_request") {
		t.Error("sso-protect.conf lacks auth_request")
	}
}
