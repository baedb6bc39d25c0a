package caddymodule_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// oidcWorld is one real OIDC login setup: a provider signing real ID
// tokens, a Caddy with the sso handler in front of an echoing upstream.
type oidcWorld struct {
	t        *testing.T
	idp      *oidctest.Server
	upstream *echoUpstream
	gw       *gateway
	idpBlock string // extra lines inside the idp block
	sites    string
}

const (
	clientID     = "caddy-sso-test"
	clientSecret = "test-secret"
)

func newOIDCWorld(t *testing.T, idpBlock string) *oidcWorld {
	t.Helper()
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	w := &oidcWorld{t: t, idp: op, upstream: newEchoUpstream(t), gw: newGateway(t), idpBlock: idpBlock}
	op.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback"}})
	op.AddUser("ada", "ada-pw", map[string]any{
		"sub": "sub-ada", "given_name": "Ada", "family_name": "Lovelace",
		"email": "ada@example.com", "email_verified": true, "groups": []string{"eng", "admins"},
	})
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	return w
}

func (w *oidcWorld) caddyfile() string {
	block := fmt.Sprintf("\t\tidp test oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n%s\t\t}\n",
		w.idp.Issuer, clientID, clientSecret, w.idpBlock)
	return w.gw.caddyfile(block, w.sites)
}

func (w *oidcWorld) start() *oidcWorld {
	w.gw.start(w.caddyfile())
	return w
}

// browser is a cookie-keeping HTTP client that identifies as a browser
// navigation, as curl and real browsers do.
type browser struct {
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, client: &http.Client{Jar: jar, Transport: retryGETOnEOF{}}}
}

// retryGETOnEOF retries a GET or HEAD once when the connection was closed
// unanswered, as browsers do. That happens to a connection the old server
// accepts in the instant a reload stops it. TestReloadKeepsSessionsAndServes
// uses a client without this, so it still counts every such failure.
type retryGETOnEOF struct{}

func (retryGETOnEOF) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil && errors.Is(err, io.EOF) && (req.Method == http.MethodGet || req.Method == http.MethodHead) && req.Body == nil {
		return http.DefaultTransport.RoundTrip(req)
	}
	return resp, err
}

// noRedirects returns a copy of the browser's client that stops at redirects.
func (b *browser) noRedirects() *http.Client {
	c := *b.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (b *browser) get(rawURL string, header ...string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, rawURL, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
var formAction = regexp.MustCompile(`<form method="post" action="([^"]+)">`)

// signIn opens rawURL, fills in the provider's login form when it shows up,
// follows every redirect back, and returns the final response.
func (b *browser) signIn(rawURL, username, password string) *http.Response {
	b.t.Helper()
	resp := b.get(rawURL)
	body := readBody(b.t, resp)
	action := formAction.FindStringSubmatch(body)
	if action == nil || !strings.Contains(body, `id="username"`) {
		// Already signed in at the provider, or refused before its form.
		resp.Body = io.NopCloser(strings.NewReader(body))
		return resp
	}
	form := url.Values{"username": {username}, "password": {password}}
	for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	resp, err := b.client.PostForm(html.UnescapeString(action[1]), form)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// upstreamSaw decodes the echoing upstream's answer.
func upstreamSaw(t *testing.T, resp *http.Response) echoed {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("expected the upstream's answer, got %s: %s", resp.Status, body)
	}
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not the upstream's answer (%v): %s", err, body)
	}
	return e
}

func (e echoed) header(name string) string {
	for k, v := range e.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// users reads the store after Caddy has stopped with it: stop first.
func readStore(t *testing.T, path string, fn func(tx store.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}
