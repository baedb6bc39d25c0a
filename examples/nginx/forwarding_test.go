package nginx_test

import (
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

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/exampletest"
)

// received is what requestApp saw of a request.
type received struct {
	Method, Path, Host, Body string
	Headers                  http.Header
}

// newRequestApp starts an app that answers every request with what it
// received (received, as JSON), Host, method and body included, which the
// EchoUpstream leaves out. It returns the app's URL.
func newRequestApp(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(received{r.Method, r.URL.RequestURI(), r.Host, string(body), r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestNginxForwardsTheRequest: what the shipped snippets hand on besides
// the identity. The app gets the browser's Host, nginx's own
// X-Forwarded-Proto, -Host and -For (not the ones a client sends: an app
// behind a proxy believes them), and a signed-in form's POST with its
// body, promptly (the verify subrequest carries no body and no
// Content-Length). The verify location is nginx's alone: a browser asking
// for it gets 404, not the gateway's answer with the identity headers and
// tokens. The gateway listens on loopback's 127.0.0.1 only (bind), where
// only nginx reaches it.
func TestNginxForwardsTheRequest(t *testing.T) {
	site, b, g := startExampleWith(t, func(g *caddytest.Gateway, site string) string {
		return exampletest.Shipped(t, "Caddyfile", exampletest.OnTestGateway(g, site)...)
	}, newRequestApp(t), nil)
	caddytest.ReadBody(t, b.SignIn(site+"/", "ada", "ada-pw"))
	u, _ := url.Parse(site)
	b.Client.Timeout = 10 * time.Second

	get := func(resp *http.Response) received {
		t.Helper()
		body := caddytest.ReadBody(t, resp)
		var got received
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("%s from the app: %s", resp.Status, body)
		}
		return got
	}

	got := get(b.Get(site+"/page", "X-Forwarded-Proto", "http", "X-Forwarded-Host", "evil.example", "X-Forwarded-For", "198.51.100.7"))
	if got.Host != u.Hostname() {
		t.Errorf("the app got Host %q, want %q ($host)", got.Host, u.Hostname())
	}
	for name, want := range map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": u.Host} {
		if v := got.Headers.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("the app got %s %q, want %q", name, v, want)
		}
	}
	if xff := got.Headers.Get("X-Forwarded-For"); !strings.HasSuffix(xff, ", 127.0.0.1") {
		t.Errorf("the app got X-Forwarded-For %q, want nginx's peer (127.0.0.1) last", xff)
	}

	req, err := http.NewRequest(http.MethodPost, site+"/orders", strings.NewReader("item=42&qty=3"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", site)
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatalf("a signed-in POST: %v", err)
	}
	if got := get(resp); got.Method != http.MethodPost || got.Body != "item=42&qty=3" || got.Headers.Get("X-Forwarded-User") == "" {
		t.Errorf("a signed-in POST reached the app as %s with body %q, user %q", got.Method, got.Body, got.Headers.Get("X-Forwarded-User"))
	}

	resp = b.Get(site+"/.sso-verify", "X-Forwarded-Uri", "/reports")
	if body := caddytest.ReadBody(t, resp); resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Forwarded-User") != "" {
		t.Errorf("a browser asking for /.sso-verify: %s, X-Forwarded-User %q, want nginx's 404:\n%s", resp.Status, resp.Header.Get("X-Forwarded-User"), body)
	}

	d := net.Dialer{Timeout: 2 * time.Second}
	if c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", g.Port)); err == nil {
		c.Close()
		t.Errorf("the gateway accepts connections on 127.0.0.2:%d: the Caddyfile's bind 127.0.0.1 is lost", g.Port)
	}
}
