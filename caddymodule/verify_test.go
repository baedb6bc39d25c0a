package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/exampletest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// verifyConfig is the Caddyfile of tests with forward-auth sites: the
// harness's global options, servers blocks that trust 127.0.0.1 as a
// proxy on the listed ports (the test client stands in for nginx there),
// the OIDC world's IdP, then sites.
func (w *oidcWorld) verifyConfig(trustedPorts []int, sites string) string {
	servers := ""
	for _, p := range trustedPorts {
		servers += fmt.Sprintf("\tservers 127.0.0.1:%d {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n", p)
	}
	o := caddytest.OIDC{IdP: w.idp, IdPBlock: w.idpBlock}
	return "{\n" + w.gw.globalOptions() + servers + "\tsso {\n\t\tstore bolt " + w.gw.StorePath() + "\n" +
		o.IdPConfig() + "\t}\n}\n\n" + sites
}

// otherPorts returns n more reserved loopback ports, distinct from one
// another and from every port handed out before (internal/testport).
func otherPorts(t *testing.T, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = testport.For(t)
	}
	return out
}

// subrequest asks the verify endpoint at rawURL about a navigation to uri,
// as a proxy does: the browser's cookies and headers, and X-Forwarded-*.
func subrequest(t *testing.T, b *browser, rawURL, uri string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,*/*;q=0.8")
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", uri)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	return resp
}

// TestVerifyEndpoint: the sso directive in a verify mode answers a
// proxy's subrequests (docs/forward-auth.md): 401 with the login URL (or,
// in forward_auth mode, a redirect for a navigation) without a session;
// 200 with the identity headers, and the browser's cookies without the
// gateway's, with one; 403 when the route's rules exclude the user. The
// original URI is believed only from a trusted proxy.
func TestVerifyEndpoint(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	ports := otherPorts(t, 2)
	untrusted, fwd := ports[0], ports[1]
	site := func(port int, lines string) string {
		return fmt.Sprintf("http://127.0.0.1:%d {\n\tbind 127.0.0.1\n\tsso test {\n%s\t}\n}\n", port, lines)
	}
	w.gw.start(w.verifyConfig([]int{w.gw.port, fwd},
		site(w.gw.port, "\t\tmode auth_request\n")+
			site(untrusted, "\t\tmode auth_request\n")+
			site(fwd, "\t\tmode forward_auth\n\t\tdeny group admins\n")))
	b := newBrowser(t)
	trustedURL := w.gw.base + "/verify"
	untrustedURL := fmt.Sprintf("http://127.0.0.1:%d/verify", untrusted)
	fwdURL := fmt.Sprintf("http://127.0.0.1:%d/verify", fwd)

	// No session: 401 and where to sign in, coming back to the original URI.
	resp := subrequest(t, b, trustedURL, "/reports?year=2026", "X-Forwarded-User", "mallory")
	wantLogin := w.gw.base + "/.sso/login?return_to=" + url.QueryEscape("/reports?year=2026")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != wantLogin {
		t.Fatalf("no session: %s, Location %q, want 401 and %q", resp.Status, resp.Header.Get("Location"), wantLogin)
	}
	if resp.Header.Get("X-Forwarded-User") != "" || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a refusal carries identity or cookies: %v", resp.Header)
	}
	// From a peer that is not a trusted proxy, X-Forwarded-Uri is ignored.
	resp = subrequest(t, b, untrustedURL, "/reports?year=2026")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusUnauthorized || !strings.HasSuffix(loc, "return_to=%2F") {
		t.Fatalf("untrusted proxy: %s, Location %q, want return_to=%%2F", resp.Status, loc)
	}
	if !strings.Contains(w.gw.logs(), "does not come from a trusted proxy") {
		t.Error("no warning about the untrusted proxy's X-Forwarded-Uri")
	}
	// forward_auth: a navigation is sent to sign in, a script gets 401.
	resp = subrequest(t, b, fwdURL, "/app")
	if resp.StatusCode != http.StatusFound || !strings.HasSuffix(resp.Header.Get("Location"), "/.sso/login?return_to=%2Fapp") {
		t.Fatalf("forward_auth navigation: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	resp = subrequest(t, b, fwdURL, "/api", "Accept", "application/json")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forward_auth API request: %s, want 401", resp.Status)
	}

	// Signing in at the login URL (which the proxy routes to the gateway).
	if resp := b.signIn(wantLogin, "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s", resp.Status)
	}
	u := userBySubject(t, "sub-ada")
	resp = subrequest(t, b, trustedURL, "/reports", "X-Forwarded-User", "mallory", "Cookie", "theme=dark")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with a session: %s", resp.Status)
	}
	for h, want := range map[string]string{
		"X-Forwarded-User":   u.ID,
		"X-Forwarded-Email":  "ada@example.com",
		"X-Forwarded-Groups": "admins,eng",
		"Cache-Control":      "no-store",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("verify answer %s = %q, want %q", h, got, want)
		}
	}
	// The app gets the browser's cookies without the gateway's (the
	// IdP's own session cookie is there because the test IdP shares the
	// host).
	if c := resp.Header.Get("Cookie"); !strings.HasPrefix(c, "theme=dark") || strings.Contains(c, "sso_session") {
		t.Errorf("verify answer Cookie = %q, want the browser's without the session cookie", c)
	}
	// The route's access rules apply: ada is in admins.
	resp = subrequest(t, b, fwdURL, "/app")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Forwarded-User") != "" {
		t.Fatalf("denied user: %s %v", resp.Status, resp.Header)
	}
}

// forwardAuthDoc is the page whose "Caddy's forward_auth" config
// TestForwardAuthThroughCaddy runs.
const forwardAuthDoc = "../docs/forward-auth.md"

// caddyFrontConfig is the Caddy forward_auth front of docs/forward-auth.md
// as operators get it, only its addresses changed: the site at front,
// asking the gateway on gwPort, in front of the app at app.
func caddyFrontConfig(t *testing.T, front string, gwPort int, app string) string {
	return exampletest.DocBlock(t, forwardAuthDoc, "## Caddy's forward_auth", "caddyfile",
		"app.example.com {", front+" {\n\tbind 127.0.0.1",
		"127.0.0.1:9091", fmt.Sprintf("127.0.0.1:%d", gwPort),
		"127.0.0.1:8080", app)
}

// newFrontUpstream is an app that answers with the path, headers and
// trailers it received (Echoed for upstreamSaw, trailerEcho for trailers),
// after reading the whole body, which is when trailers arrive.
func newFrontUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "headers": r.Header,
			"trailers": r.Trailer, "body": string(body)})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestForwardAuthThroughCaddy puts the gateway behind Caddy's own
// forward_auth, with the front config docs/forward-auth.md gives (read
// from the page): a real sign-in through the front, the identity reaching
// the app, and spoofed identity headers and the session cookie not
// reaching it. A Connection header naming identity headers, which would
// make the front's reverse_proxy delete what forward_auth copied, is
// refused. Request trailers are not filtered by that config, as the page
// says: the test shows one reaching the app, so that the page is revised
// if a Caddy release changes it (TestIdentityHeadersSurviveHopByHop shows
// the sso directive deleting them).
func TestForwardAuthThroughCaddy(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	gwPort := otherPorts(t, 1)[0]
	front := w.gw.base
	w.gw.start(w.verifyConfig([]int{gwPort}, caddyFrontConfig(t, front, gwPort, newFrontUpstream(t))+fmt.Sprintf(`
# No host in the address: forward_auth passes the browser's Host, and
# Caddy would let a Host no site names through with an empty 200.
http://:%d {
	bind 127.0.0.1
	sso test {
		mode forward_auth
		base_url %s
	}
}
`, gwPort, front)))
	b := newBrowser(t)
	saw := upstreamSaw(t, b.signIn(front+"/dashboard?tab=2", "ada", "ada-pw"))
	if saw.Path != "/dashboard?tab=2" {
		t.Errorf("upstream got %q, want the page first asked for", saw.Path)
	}
	u := userBySubject(t, "sub-ada")
	saw = upstreamSaw(t, b.get(front+"/again", "X-Forwarded-User", "mallory", "Remote-User", "mallory",
		"X-Forwarded-Groups", "root", "X-Authentik-Username", "mallory", "Cookie", "theme=dark"))
	if saw.header("X-Forwarded-User") != u.ID || saw.header("X-Forwarded-Groups") != "admins,eng" {
		t.Errorf("upstream identity: user %q groups %q", saw.header("X-Forwarded-User"), saw.header("X-Forwarded-Groups"))
	}
	for _, h := range []string{"Remote-User", "X-Authentik-Username"} {
		if got := saw.header(h); got != "" {
			t.Errorf("a spoofed %s reached the upstream: %q", h, got)
		}
	}
	if c := saw.header("Cookie"); !strings.HasPrefix(c, "theme=dark") || strings.Contains(c, "sso_session") {
		t.Errorf("upstream Cookie = %q, want the browser's without the gateway's", c)
	}

	token := b.cookieValue(front, "sso_session")
	host := strings.TrimPrefix(front, "http://")
	send := func(t *testing.T, lines string) (*http.Response, trailerEcho) {
		t.Helper()
		resp, body := rawRequest(t, w.gw, "GET /page HTTP/1.1\nHost: "+host+"\nCookie: sso_session="+token+
			"\nAccept: application/json\n"+lines+"\n")
		var saw trailerEcho
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &saw); err != nil {
				t.Fatalf("not the app's answer (%v): %s", err, body)
			}
		}
		return resp, saw
	}
	t.Run("Connection naming identity headers", func(t *testing.T) {
		for _, lines := range []string{
			"Connection: keep-alive, X-Forwarded-User, X-Forwarded-Groups\n",
			"Connection: keep-alive\nConnection: x-forwarded-groups\n",
			"Connection: close,Remote-User\n",
		} {
			resp, saw := send(t, lines)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%q: %s (the app saw user %q, groups %q), want 400", lines, resp.Status,
					header(saw.Headers, "X-Forwarded-User"), header(saw.Headers, "X-Forwarded-Groups"))
			}
		}
		// Connection tokens of HTTP itself still pass.
		resp, saw := send(t, "Connection: keep-alive, Upgrade\nConnection: close\n")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Connection: keep-alive, Upgrade: %s, want 200", resp.Status)
		}
		if got := header(saw.Headers, "X-Forwarded-User"); len(got) != 1 || got[0] != u.ID {
			t.Errorf("X-Forwarded-User = %q, want %q", got, u.ID)
		}
	})
	// The front's path matcher takes these for /.sso/x (it merges slashes,
	// resolves dot segments and ignores case), and reverse_proxy
	// passes them on as sent: the gateway must serve them as its endpoint
	// too, never as a forward-auth question, whose 200 would hand a script
	// of the site the identity and the app's HttpOnly cookies (Cookie).
	t.Run("paths the front cleans into the prefix", func(t *testing.T) {
		for _, p := range []string{"//.sso/x", "/./.sso/x", "/a/../.sso/x", "/%2E/.sso/x", "/%2F.sso/x", "/.SSO/x", "/.Sso/whoami"} {
			resp := b.get(front+p, "Cookie", "app_sid=httponly", "Accept", "*/*", "Sec-Fetch-Mode", "cors")
			readBody(t, resp)
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Forwarded-User") != "" || resp.Header.Get("Cookie") != "" {
				t.Errorf("GET %s: %s, X-Forwarded-User %q, Cookie %q; want the endpoints' 404, nothing of the verify answer",
					p, resp.Status, resp.Header.Get("X-Forwarded-User"), resp.Header.Get("Cookie"))
			}
		}
	})
	t.Run("trailers pass, as the docs say", func(t *testing.T) {
		resp, body := rawRequest(t, w.gw, "POST /upload HTTP/1.1\nHost: "+host+"\nCookie: sso_session="+token+
			"\nAccept: application/json\nTransfer-Encoding: chunked\nTrailer: X-Forwarded-User\nConnection: close\n\n"+
			"5\nhello\n0\nX-Forwarded-User: mallory\n\n")
		var saw trailerEcho
		if err := json.Unmarshal([]byte(body), &saw); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		if got := header(saw.Trailers, "X-Forwarded-User"); len(got) != 1 || got[0] != "mallory" {
			t.Errorf("trailers %v: the client's X-Forwarded-User trailer no longer reaches the app through the "+
				"forward_auth front; revise docs/forward-auth.md and docs/security.md, which say it does", saw.Trailers)
		}
	})
}

// TestForwardAuthCaddyDocCoversProtectedHeaders: the Caddy front of
// docs/forward-auth.md copies every name the gateway protects
// (gateway.ProtectedHeaders) and Cookie, so that a client's copy is
// deleted, and its Connection matcher refuses each of them as a token, in
// any letter case and position, but not HTTP's own tokens.
func TestForwardAuthCaddyDocCoversProtectedHeaders(t *testing.T) {
	doc := caddyFrontConfig(t, "http://127.0.0.1:1", 2, "127.0.0.1:3")
	_, copyBlock, ok := strings.Cut(doc, "copy_headers {\n")
	copyBlock, _, ok2 := strings.Cut(copyBlock, "}")
	if !ok || !ok2 {
		t.Fatalf("no copy_headers block in the config:\n%s", doc)
	}
	copied := map[string]bool{}
	for _, f := range strings.Fields(copyBlock) {
		copied[http.CanonicalHeaderKey(f)] = true
	}
	m := regexp.MustCompile(`header_regexp Connection (\S+)`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no Connection matcher in the config:\n%s", doc)
	}
	conn := regexp.MustCompile(m[1])
	for _, name := range append(ssogateway.ProtectedHeaders(), "Cookie") {
		if !copied[http.CanonicalHeaderKey(name)] {
			t.Errorf("copy_headers does not list %s", name)
		}
	}
	for _, name := range ssogateway.ProtectedHeaders() {
		for _, v := range []string{name, strings.ToLower(name), "keep-alive, " + strings.ToUpper(name), "close,\t" + name + " ,TE"} {
			if !conn.MatchString(v) {
				t.Errorf("the Connection matcher %s lets %q through", m[1], v)
			}
		}
	}
	for _, v := range []string{"keep-alive", "close", "Upgrade", "keep-alive, Upgrade", "TE", "keep-alive, HTTP2-Settings"} {
		if conn.MatchString(v) {
			t.Errorf("the Connection matcher %s refuses %q", m[1], v)
		}
	}
}

// TestVerifyPassesTokensOnlyToPermitted: a verify route that passes tokens
// puts the access token in its 200 answer, for the proxy to hand the app,
// and never in the answer refusing a session its access rules deny (the
// proxy may copy a refusal's headers too).
func TestVerifyPassesTokensOnlyToPermitted(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	denying := otherPorts(t, 1)[0]
	site := func(port int, lines string) string {
		return fmt.Sprintf("http://127.0.0.1:%d {\n\tbind 127.0.0.1\n\tsso test {\n%s\t}\n}\n", port, lines)
	}
	w.gw.start(w.verifyConfig([]int{w.gw.port, denying},
		site(w.gw.port, "\t\tmode auth_request\n\t\tpass_access_token\n")+
			site(denying, "\t\tmode auth_request\n\t\tpass_access_token\n\t\tdeny group admins\n")))
	b := newBrowser(t)
	login := w.gw.base + "/.sso/login?return_to=%2F"
	if resp := b.signIn(login, "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s", resp.Status)
	}

	resp := subrequest(t, b, w.gw.base+"/verify", "/reports")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Forwarded-Access-Token") == "" {
		t.Fatalf("permitted session: %s, access token %q; want 200 with the token", resp.Status, resp.Header.Get("X-Forwarded-Access-Token"))
	}
	// ada is in admins, whom the second route denies.
	resp = subrequest(t, b, fmt.Sprintf("http://127.0.0.1:%d/verify", denying), "/reports")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("denied session: %s, want 403", resp.Status)
	}
	if got := resp.Header.Get("X-Forwarded-Access-Token"); got != "" {
		t.Errorf("the refusal of a denied session carries its access token %q", got)
	}
}

// TestVerifyErrorCarriesNoTokens: an answer that fails after the access
// check (here the proxy names a host the route does not vouch for) carries
// neither the tokens nor the identity: forward_auth and Traefik hand such
// an answer, headers and all, to the browser.
func TestVerifyErrorCarriesNoTokens(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.gw.start(w.verifyConfig([]int{w.gw.port}, fmt.Sprintf(
		"http://127.0.0.1:%d {\n\tbind 127.0.0.1\n\tsso test {\n\t\tmode forward_auth\n\t\tpass_access_token\n\t\tpass_id_token\n\t\tidentity_jwt\n\t}\n}\n", w.gw.port)))
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/.sso/login?return_to=%2F", "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s", resp.Status)
	}
	if resp := subrequest(t, b, w.gw.base+"/verify", "/reports"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Forwarded-Access-Token") == "" {
		t.Fatalf("permitted session: %s, want 200 with the token", resp.Status)
	}
	resp := subrequest(t, b, w.gw.base+"/verify", "/reports", "X-Forwarded-Host", "localhost")
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("an unvouched host was answered %s", resp.Status)
	}
	for _, h := range []string{"X-Forwarded-Access-Token", "X-Forwarded-Id-Token", "X-Forwarded-Identity-Jwt", "X-Forwarded-User", "X-Forwarded-Email"} {
		if got := resp.Header.Get(h); got != "" {
			t.Errorf("the %s answer for an unvouched host carries %s: %.40q", resp.Status, h, got)
		}
	}
}

// TestVerifyAccessLogFilter: in a verify mode the tokens are headers of
// the answer, which a site's access log records at INFO; the filter
// docs/security.md gives ("Access logs in a verify mode") keeps them out.
func TestVerifyAccessLogFilter(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	logPath := t.TempDir() + "/access.log"
	w.gw.start(w.verifyConfig([]int{w.gw.port}, fmt.Sprintf(`http://127.0.0.1:%d {
	bind 127.0.0.1
	log {
		output file %s
		format filter {
			wrap json
			fields {
				resp_headers>X-Forwarded-Access-Token delete
				resp_headers>X-Forwarded-Id-Token delete
				resp_headers>X-Forwarded-Identity-Jwt delete
			}
		}
	}
	sso test {
		mode auth_request
		pass_access_token
		pass_id_token
		identity_jwt
	}
}
`, w.gw.port, logPath)))
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/.sso/login?return_to=%2F", "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s", resp.Status)
	}
	resp := subrequest(t, b, w.gw.base+"/verify", "/reports")
	var secrets []string
	for _, h := range []string{"X-Forwarded-Access-Token", "X-Forwarded-Id-Token", "X-Forwarded-Identity-Jwt"} {
		v := resp.Header.Get(h)
		if v == "" {
			t.Fatalf("the verify answer (%s) lacks %s", resp.Status, h)
		}
		secrets = append(secrets, v)
	}
	var log string
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log, "/verify") && time.Now().Before(deadline) {
		data, _ := os.ReadFile(logPath)
		log = string(data)
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(log, "/verify") {
		t.Fatalf("no access log line for the subrequest:\n%s", log)
	}
	if found := findTokens(log, secrets); len(found) > 0 {
		t.Errorf("tokens in the filtered access log: %v", found)
	}
}

// TestProtectErrorRouteGetsNoTokens: in protect mode, an error after the
// tokens were set on the request (an identity JWT for a host nothing
// vouches for) hands the request to the site's handle_errors without them:
// an error route is not the upstream the tokens are for.
func TestProtectErrorRouteGetsNoTokens(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.gw.start(w.verifyConfig([]int{w.gw.port}, fmt.Sprintf(`http://127.0.0.1:%d {
	bind 127.0.0.1
	handle_errors {
		respond "access={http.request.header.X-Forwarded-Access-Token} user={http.request.header.X-Forwarded-User} auth={http.request.header.Authorization}" 500
	}
	sso test {
		pass_access_token
		set_authorization_header
		identity_jwt
	}
	respond "upstream"
}
`, w.gw.port)))
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/", "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s", resp.Status)
	}
	resp := b.get(w.gw.base+"/reports", "X-Forwarded-Host", "localhost")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(body, "access=") {
		t.Fatalf("an unvouched host: %s %q, want the error route's answer", resp.Status, body)
	}
	if want := "access= user= auth="; body != want {
		t.Errorf("the error route got %q, want %q: the tokens and identity set for the upstream", body, want)
	}
}

// TestErrorRoutesKeepTheirStatusAndNoCookies: the site's error routes may
// proxy (handle_errors { reverse_proxy … }). An endpoint's error reaches
// them without the gateway's cookies, as the protect path's requests do;
// and a verify answer never reaches them, since an error route's own
// status (a proxied 200) would turn a refusal into "allowed".
func TestErrorRoutesKeepTheirStatusAndNoCookies(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	verifyPort := otherPorts(t, 1)[0]
	w.gw.start(w.verifyConfig([]int{w.gw.port, verifyPort}, fmt.Sprintf(`http://127.0.0.1:%d {
	bind 127.0.0.1
	handle_errors {
		respond "cookie=[{http.request.header.Cookie}]" 200
	}
	sso test
	respond "upstream"
}

http://:%d {
	bind 127.0.0.1
	handle_errors {
		respond "from the error route" 200
	}
	sso test {
		mode auth_request
		base_url %s
		deny group admins
	}
}
`, w.gw.port, verifyPort, w.gw.base)))
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/", "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s", resp.Status)
	}
	resp := b.get(w.gw.base+"/.sso/no-such-endpoint", "Cookie", "theme=dark")
	body := readBody(t, resp)
	if !strings.HasPrefix(body, "cookie=") {
		t.Fatalf("an unknown endpoint: %s %q, want the error route's answer", resp.Status, body)
	}
	if strings.Contains(body, "sso_session") || !strings.Contains(body, "theme=dark") {
		t.Errorf("the error route saw %q: want the browser's other cookies and not the session cookie", body)
	}

	// ada is in admins: the rule refuses her, whatever the error routes do.
	resp = subrequest(t, b, fmt.Sprintf("http://127.0.0.1:%d/verify", verifyPort), "/reports")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a session the rules refuse: %s, want 403 from the gateway", resp.Status)
	}
}
