package idp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestSafeRedirects: redirects are held to CheckURL's rule (https, or
// plain http on loopback hosts); the caller's CheckRedirect still runs,
// Go's cap of 10 redirects stays, and the caller's client is not changed.
func TestSafeRedirects(t *testing.T) {
	check := func(c *http.Client, loc string, via int) error {
		req, err := http.NewRequest(http.MethodGet, loc, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.CheckRedirect(req, make([]*http.Request, via))
	}
	c := idp.SafeRedirects(nil)
	if c.Timeout != idp.DefaultHTTPTimeout {
		t.Errorf("default timeout %v", c.Timeout)
	}
	for _, loc := range []string{"http://example.com/jwks", "http://10.0.0.1/", "ftp://example.com/", "https://user:pw@example.com/"} {
		if err := check(c, loc, 0); err == nil {
			t.Errorf("redirect to %s allowed", loc)
		}
	}
	for _, loc := range []string{"https://example.com/jwks", "http://127.0.0.1:8080/jwks", "http://localhost/"} {
		if err := check(c, loc, 0); err != nil {
			t.Errorf("redirect to %s refused: %v", loc, err)
		}
	}
	if err := check(c, "https://example.com/", 10); err == nil {
		t.Error("an 11th redirect was allowed")
	}

	errInner := errors.New("inner")
	var innerCalls int
	mine := &http.Client{Timeout: time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		innerCalls++
		return errInner
	}}
	c = idp.SafeRedirects(mine)
	if c == mine || c.Timeout != time.Second {
		t.Errorf("got %p timeout %v, want a copy of %p", c, c.Timeout, mine)
	}
	if err := check(c, "https://example.com/", 0); !errors.Is(err, errInner) {
		t.Errorf("caller's CheckRedirect not kept: %v", err)
	}
	if err := check(c, "http://example.com/", 0); err == nil || errors.Is(err, errInner) {
		t.Errorf("downgrade = %v, want refused before the caller's CheckRedirect", err)
	}
	if innerCalls != 1 {
		t.Errorf("caller's CheckRedirect ran %d times, want 1", innerCalls)
	}
	if err := mine.CheckRedirect(nil, nil); !errors.Is(err, errInner) {
		t.Error("the caller's client was changed")
	}
}

// TestSafeRedirectsFollows: through a real client, an https-to-http
// redirect is refused (here from a loopback https server to a host that
// is not loopback) and nothing reaches the target.
func TestSafeRedirectsFollows(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.com/keys", http.StatusFound)
	}))
	defer srv.Close()
	c := idp.SafeRedirects(srv.Client())
	resp, err := c.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("redirect to plain http followed")
	}
	if !strings.Contains(err.Error(), "refusing redirect") {
		t.Errorf("err = %v", err)
	}
}

// TestNoRedirects: no redirect is followed, whatever its target, and the
// caller's client is not changed.
func TestNoRedirects(t *testing.T) {
	var hits int
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	mine := &http.Client{Timeout: time.Second}
	c := idp.NoRedirects(mine)
	if c.Timeout != time.Second || mine.CheckRedirect != nil {
		t.Error("not a copy of the caller's client")
	}
	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("secret"))
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, idp.ErrRedirectRefused) || hits != 0 {
		t.Errorf("err = %v, target hits %d; want %v and 0", err, hits, idp.ErrRedirectRefused)
	}
	if idp.NoRedirects(nil).Timeout != idp.DefaultHTTPTimeout {
		t.Error("default timeout")
	}
}
