package nginx_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/exampletest"
)

// TestNginxFormAfterSessionEnded: a form a person submits through nginx
// after their session ended. nginx shows no body of the gateway's 401, it
// redirects to its Location: that sign-in must come back to the form's
// page (the Referer), not to a GET of the URL the form posted to (a 405,
// or another page), and the app must not get the POST.
func TestNginxFormAfterSessionEnded(t *testing.T) {
	site, b := startExample(t, nil, nil)
	resp, body := exampletest.PostOrderForm(t, b.NoRedirects(), site)
	want := site + "/.sso/login?return_to=" + url.QueryEscape("/orders/new?draft=1")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != want {
		t.Fatalf("a form posted without a session: %s, Location %q, want a redirect to %q", resp.Status, loc, want)
	}
	if strings.Contains(body, `"path"`) {
		t.Fatalf("the app got the form: %s", body)
	}
	if saw := caddytest.UpstreamSaw(t, b.SignIn(want, "ada", "ada-pw")); saw.Path != "/orders/new?draft=1" {
		t.Errorf("signed in, the browser is at %q, want the form's page", saw.Path)
	}
}

// TestNginxClientCannotChooseItsLoggedSource: nginx appends the address
// it sees to the client's X-Forwarded-For ($proxy_add_x_forwarded_for),
// so a client connecting from 127.0.0.2 sends "198.51.100.1, 127.0.0.2".
// With trusted_proxies_strict (the shipped Caddyfile, and the gateway of
// docs/forward-auth.md) the gateway takes the last address that is not a
// trusted proxy: the WARN line of a refused callback names 127.0.0.2, and
// its once-a-minute budget (per IdP, reason and source) holds, where the
// first address would let a client write one WARN line per made-up
// address.
func TestNginxClientCannotChooseItsLoggedSource(t *testing.T) {
	for name, gateway := range map[string]func(t *testing.T, g *caddytest.Gateway, site string) string{
		"shipped Caddyfile": func(t *testing.T, g *caddytest.Gateway, site string) string {
			return exampletest.Shipped(t, "Caddyfile", exampletest.OnTestGateway(g, site)...)
		},
		"docs/forward-auth.md": func(t *testing.T, g *caddytest.Gateway, site string) string {
			return exampletest.DocBlock(t, "../../docs/forward-auth.md", "## The gateway", "caddyfile",
				"{\n\tservers {", "{\n"+g.GlobalOptions()+"\tservers {",
				"idp corp oidc { … }", "store bolt "+g.StorePath()+"\n\t\tidp corp oidc {\n\t\t\tissuer {env.OIDC_ISSUER}\n"+
					"\t\t\tclient_id {env.OIDC_CLIENT_ID}\n\t\t\tclient_secret {env.OIDC_CLIENT_SECRET}\n\t\t\tjit\n\t\t}",
				"http://:9091", fmt.Sprintf("http://:%d", g.Port),
				"base_url https://app.example.com", "base_url "+site)
		},
	} {
		t.Run(name, func(t *testing.T) {
			site, b, g := startExampleWith(t, func(g *caddytest.Gateway, site string) string { return gateway(t, g, site) }, "", nil)
			from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
			b.Client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(b)}, DialContext: from.DialContext}
			for i := range 3 {
				caddytest.ReadBody(t, b.Get(fmt.Sprintf("%s/.sso/oidc/corp/callback?code=x&state=y%d", site, i),
					"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1)))
			}
			warned := 0
			for _, line := range strings.Split(g.Logs(), "\n") {
				if !strings.Contains(line, "sign-in refused") {
					continue
				}
				if !strings.Contains(line, `"source":"127.0.0.2"`) {
					t.Errorf("a refused callback from 127.0.0.2 is logged with another source: %s", line)
				}
				if strings.Contains(line, `"level":"warn"`) {
					warned++
				}
			}
			if warned != 1 {
				t.Errorf("%d WARN lines of refused callbacks from one client, want 1 (the budget's)", warned)
			}
		})
	}
}

// TestNginxWebSocket: app.conf passes WebSockets. A signed-in handshake
// gets the app's 101 and the connection carries data both ways; a
// signed-out one is sent to sign in, as any request. Ordinary requests
// reach the app without a Connection header, so that they keep their
// connection open (not "close", nginx's default, nor "upgrade").
func TestNginxWebSocket(t *testing.T) {
	site, b, _ := startExampleWith(t, func(g *caddytest.Gateway, site string) string {
		return exampletest.Shipped(t, "Caddyfile", exampletest.OnTestGateway(g, site)...)
	}, newWebSocketApp(t), nil)
	resp, _ := webSocketHandshake(t, site, pool(b), "")
	want := site + "/.sso/login?return_to=" + url.QueryEscape(caddytest.WebSocketPath)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != want {
		t.Fatalf("a WebSocket without a session: %s, Location %q, want a redirect to %q", resp.Status, loc, want)
	}

	saw := caddytest.UpstreamSaw(t, b.SignIn(site+"/", "ada", "ada-pw"))
	if c := saw.Header("Connection"); c != "" {
		t.Errorf("an ordinary request reached the app with Connection: %s", c)
	}
	u, _ := url.Parse(site)
	var cookies []string
	for _, c := range b.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	resp, conn := webSocketHandshake(t, site, pool(b), strings.Join(cookies, "; "))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("a signed-in WebSocket: %s, want 101", resp.Status)
	}
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := conn.ReadString('\n'); err != nil || line != "ping\n" {
		t.Errorf("through the WebSocket came back %q, %v, want the app's echo", line, err)
	}
}

// newWebSocketApp starts an app that, like a WebSocket server, switches
// protocols at caddytest.WebSocketPath only for a handshake (Upgrade:
// websocket, Connection naming upgrade, HTTP/1.1), then echoes what it receives;
// a request without them gets 400. Other paths get the EchoUpstream's
// answer (caddytest.Echoed). It returns the app's URL.
func newWebSocketApp(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != caddytest.WebSocketPath {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(caddytest.Echoed{Path: r.URL.RequestURI(), Headers: r.Header})
			return
		}
		// RFC 6455 wants the handshake in HTTP/1.1: servers refuse it
		// in 1.0, nginx's default towards the app.
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") || !r.ProtoAtLeast(1, 1) {
			http.Error(w, fmt.Sprintf("not a WebSocket handshake: %s, Upgrade %q, Connection %q", r.Proto, r.Header.Get("Upgrade"), r.Header.Get("Connection")), http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// webSocketConn is a connection after a WebSocket handshake.
type webSocketConn struct {
	net.Conn
	*bufio.Reader
}

// webSocketHandshake opens a WebSocket to the app's WebSocketPath through
// nginx as a browser does, with cookie (none when ""), and returns the
// answer and the connection, which the test's end closes.
func webSocketHandshake(t *testing.T, site string, roots *x509.CertPool, cookie string) (*http.Response, webSocketConn) {
	t.Helper()
	u, err := url.Parse(site)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if cookie != "" {
		cookie = "Cookie: " + cookie + "\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%sUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-Fetch-Mode: websocket\r\nOrigin: %s\r\n\r\n",
		caddytest.WebSocketPath, u.Host, cookie, site); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		caddytest.ReadBody(t, resp)
	}
	return resp, webSocketConn{c, br}
}
