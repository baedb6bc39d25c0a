package caddytest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/htmlform"
)

// Browser is a cookie-keeping HTTP client whose GETs identify as a browser
// navigation, as curl and real browsers do.
type Browser struct {
	T      testing.TB
	Client *http.Client
	Jar    *cookiejar.Jar
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{T: t, Jar: jar, Client: &http.Client{Jar: jar, Transport: retryGETOnEOF{}}}
}

// retryGETOnEOF retries a GET or HEAD once when the connection was closed
// unanswered, as browsers do. That happens to a connection the old server
// accepts in the instant a reload stops it. caddymodule's
// TestReloadKeepsSessionsAndServes uses a client without this, so it still
// counts every such failure.
type retryGETOnEOF struct{}

func (retryGETOnEOF) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil && errors.Is(err, io.EOF) && (req.Method == http.MethodGet || req.Method == http.MethodHead) && req.Body == nil {
		return http.DefaultTransport.RoundTrip(req)
	}
	return resp, err
}

// NoRedirects returns a copy of the browser's client that stops at redirects.
func (b *Browser) NoRedirects() *http.Client {
	c := *b.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// Get navigates to rawURL; header holds extra name, value pairs.
func (b *Browser) Get(rawURL string, header ...string) *http.Response {
	b.T.Helper()
	resp, err := b.TryGet(rawURL, header...)
	if err != nil {
		b.T.Fatal(err)
	}
	return resp
}

// TryGet is Get returning its failure instead of ending the test: for
// browsers run in goroutines other than the test's.
func (b *Browser) TryGet(rawURL string, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.Client.Do(req)
}

// SignIn opens rawURL, fills in the test IdP's login form when it shows
// up, follows every redirect back, and returns the final response.
func (b *Browser) SignIn(rawURL, username, password string) *http.Response {
	b.T.Helper()
	resp, err := b.TrySignIn(rawURL, username, password)
	if err != nil {
		b.T.Fatal(err)
	}
	return resp
}

// TrySignIn is SignIn returning its failure instead of ending the test.
func (b *Browser) TrySignIn(rawURL, username, password string) (*http.Response, error) {
	resp, err := b.TryGet(rawURL)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body := string(raw)
	action, form, ok := htmlform.First(resp.Request.URL, body)
	if !ok || !strings.Contains(body, `id="username"`) {
		// Already signed in at the provider, or refused before its form.
		resp.Body = io.NopCloser(strings.NewReader(body))
		return resp, nil
	}
	form.Set("username", username)
	form.Set("password", password)
	return b.Client.PostForm(action, form)
}

// ReadBody reads and closes a response body.
func ReadBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// UpstreamSaw decodes the EchoUpstream's answer, failing the test when the
// response is anything else.
func UpstreamSaw(t testing.TB, resp *http.Response) Echoed {
	t.Helper()
	body := ReadBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("expected the upstream's answer, got %s: %s", resp.Status, body)
	}
	var e Echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not the upstream's answer (%v): %s", err, body)
	}
	return e
}

// Refused asserts that an API-style request to rawURL with the browser's
// cookies does not reach the upstream.
func (b *Browser) Refused(rawURL string) {
	b.T.Helper()
	resp := b.Get(rawURL, "Accept", "application/json")
	body := ReadBody(b.T, resp)
	if resp.StatusCode == http.StatusOK || strings.Contains(body, `"headers"`) {
		b.T.Fatalf("request with the old session reached the upstream: %s %s", resp.Status, body)
	}
}
