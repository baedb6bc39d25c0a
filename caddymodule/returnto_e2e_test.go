package caddymodule_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// handSignIn walks one OIDC sign-in by hand, request by request, so that
// every answer of the gateway (the start's flow cookie, the callback's
// session cookie and Location) can be read as sent. The gateway's cookies
// are kept here rather than in a jar: a jar neither sends Secure cookies
// over the plain-http connection a trusted proxy's X-Forwarded-Proto:
// https stands in front of, nor shows the attributes they were set with.
// The provider's session cookie lives in b's jar.
type handSignIn struct {
	t       *testing.T
	w       *oidcWorld
	b       *browser
	header  map[string]string       // extra headers on every request to the gateway
	scheme  string                  // the scheme the gateway sees ("http", or "https" behind the proxy)
	cookies map[string]*http.Cookie // the gateway's cookies the browser holds
	tr      *http.Transport
}

func newHandSignIn(t *testing.T, w *oidcWorld, header map[string]string, scheme string) *handSignIn {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &handSignIn{t: t, w: w, b: newBrowser(t), header: header, scheme: scheme, cookies: map[string]*http.Cookie{}, tr: tr}
}

// gateway sends one navigation to the gateway and returns its answer, body
// read, without following a redirect or parsing Location (a forged one must
// reach the assertions, not end in the client's error).
func (h *handSignIn) gateway(rawURL string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	for k, v := range h.header {
		req.Header.Set(k, v)
	}
	for _, c := range h.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := h.tr.RoundTrip(req)
	if err != nil {
		h.t.Fatal(err)
	}
	// Read now (the connection is free for the next request) and kept
	// for a caller that reads it again.
	resp.Body = io.NopCloser(strings.NewReader(readBody(h.t, resp)))
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(h.cookies, c.Name)
		} else {
			h.cookies[c.Name] = c
		}
	}
	return resp
}

// run starts a sign-in with return_to, signs in at the provider (its form
// the first time, its session after) and requests the callback. It returns
// the start's answer and the callback's.
func (h *handSignIn) run(returnTo string) (start, callback *http.Response) {
	h.t.Helper()
	start = h.gateway(h.w.gw.base + "/.sso/login?return_to=" + url.QueryEscape(returnTo))
	next := start.Header.Get("Location")
	if start.StatusCode != http.StatusFound || !strings.HasPrefix(next, h.w.idp.Issuer) {
		h.t.Fatalf("return_to %q: sign-in start %s to %q, want a redirect to the provider", returnTo, start.Status, next)
	}
	callbackPrefix := h.scheme + "://" + strings.TrimPrefix(h.w.gw.base, "http://") + "/.sso/oidc/test/callback?"
	c := h.b.noRedirects()
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			h.t.Fatal(err)
		}
		body := readBody(h.t, resp)
		if resp.StatusCode == http.StatusOK {
			f, ok := caddytest.FirstForm(resp.Request.URL, body)
			if !ok || !strings.Contains(body, `id="username"`) {
				h.t.Fatalf("return_to %q: the provider answered %s without its login form:\n%.500s", returnTo, resp.Status, body)
			}
			f.Fields.Set("username", "ada")
			f.Fields.Set("password", "ada-pw")
			if resp, err = h.b.TryPostNoRedirects(f); err != nil {
				h.t.Fatal(err)
			}
			readBody(h.t, resp)
		}
		next = resp.Header.Get("Location")
		if strings.HasPrefix(next, callbackPrefix) {
			break
		}
		if next == "" {
			h.t.Fatalf("return_to %q: the provider answered %s without Location", returnTo, resp.Status)
		}
	}
	if !strings.HasPrefix(next, callbackPrefix) {
		h.t.Fatalf("return_to %q: the provider did not send the browser to %s (last Location %q)", returnTo, callbackPrefix, next)
	}
	u, _ := url.Parse(next)
	return start, h.gateway(h.w.gw.base + u.RequestURI())
}

// TestOIDCReturnToStaysOnSiteEndToEnd: a sign-in's return_to is the
// gateway's own redirect after the callback, so it must name a path on
// this site, whatever the login link carried: beginLogin and the callback
// both keep only such a path (idp.LocalPath). Each forged value goes
// through a whole sign-in at the provider, and the callback's 303 must
// stay on the site; an ordinary path with a query comes back as it was.
func TestOIDCReturnToStaysOnSiteEndToEnd(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	h := newHandSignIn(t, w, nil, "http")
	site, _ := url.Parse(w.gw.base)

	for _, rt := range []string{
		"https://evil.example/",
		"//evil.example",
		`/\evil.example`,
		"/%2F%2Fevil.example",
		"https:evil.example",
		"/\\/evil.example/",
		"///evil.example",
	} {
		_, cb := h.run(rt)
		loc := cb.Header.Get("Location")
		if cb.StatusCode != http.StatusSeeOther {
			t.Errorf("return_to %q: callback %s, want 303 See Other", rt, cb.Status)
			continue
		}
		if reason := leavesSite(site, loc); reason != "" {
			t.Errorf("return_to %q: the callback redirects to %q, which %s", rt, loc, reason)
		}
	}

	for _, rt := range []string{"/reports?year=2026", "/a/b%20c?x=1&y=2#top"} {
		_, cb := h.run(rt)
		if got := cb.Header.Get("Location"); cb.StatusCode != http.StatusSeeOther || got != rt {
			t.Errorf("return_to %q: callback %s to %q, want 303 to the same path", rt, cb.Status, got)
		}
	}
}

// leavesSite says how loc, a Location header answering a page of site,
// leaves it ("" when it does not): read as a browser does ('\' is '/' in
// an http(s) URL, tabs and newlines dropped), and as a server that
// percent-decodes the path before redirecting again would.
func leavesSite(site *url.URL, loc string) string {
	if !strings.HasPrefix(loc, "/") {
		return "is not a path on the site"
	}
	browser := strings.NewReplacer("\\", "/", "\t", "", "\n", "", "\r", "").Replace(loc)
	if strings.HasPrefix(browser, "//") {
		return "a browser reads as another host"
	}
	u, err := site.Parse(browser)
	if err != nil {
		return "does not parse: " + err.Error()
	}
	if u.Scheme != site.Scheme || u.Host != site.Host {
		return "resolves to " + u.Scheme + "://" + u.Host
	}
	path := browser
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for range 3 {
		d, err := url.PathUnescape(path)
		if err != nil || d == path {
			break
		}
		path = strings.ReplaceAll(d, "\\", "/")
		if strings.HasPrefix(path, "//") {
			return "starts with // once percent-decoded"
		}
	}
	return ""
}
