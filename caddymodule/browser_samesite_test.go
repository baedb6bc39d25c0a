package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserHasNoLaxGrace checks browsertest.New's switch against Chromium's
// two-minute grace for cookies without SameSite: a cookie set without
// SameSite a moment ago must not reach a cross-site form POST, while a
// "Secure; SameSite=None" cookie from a plain-http loopback site (as the
// SAML flow cookie is there) must. If a Chromium version dropped the
// switch, the first case fails here instead of the SAML browser tests
// silently passing on the grace.
func TestBrowserHasNoLaxGrace(t *testing.T) {
	ctx := newChromium(t)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/set":
			w.Header().Add("Set-Cookie", "nosamesite=1; Path=/; HttpOnly")
			w.Header().Add("Set-Cookie", "none=1; Path=/; HttpOnly; Secure; SameSite=None")
			fmt.Fprint(w, "set")
		case "/acs":
			fmt.Fprintf(w, "%s cookies: %s.", r.Method, r.Header.Get("Cookie"))
		}
	}))
	t.Cleanup(site.Close)
	// The site is 127.0.0.1; the posting page is on localhost, another site.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/acs"><input name="a" value="b"></form><script>document.getElementById('f').submit()</script>`, site.URL)
	}))
	t.Cleanup(other.Close)
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)

	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/set"), chromedp.Navigate(otherURL)); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, ctx, "the cross-site POST", func(s browserState) bool { return strings.HasPrefix(s.body, "POST cookies:") })
	if strings.Contains(s.body, "nosamesite=1") {
		t.Errorf("a fresh cookie without SameSite reached a cross-site POST: the grace is on (%q)", s.body)
	}
	if !strings.Contains(s.body, "none=1") {
		t.Errorf("a Secure SameSite=None cookie from http://127.0.0.1 did not reach a cross-site POST (%q)", s.body)
	}
}
