package idp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestSafeRedirects: redirects are held to CheckURL's rule (https, or
// plain http on loopback hosts); the caller's CheckRedirect still runs,
// Go's cap of 10 redirects stays, and the caller's client is not changed.
func TestSafeRedirects(t *testing.T) {
	check := func(c *http.Client, loc string, via int, from ...string) error {
		req, err := http.NewRequest(http.MethodGet, loc, nil)
		if err != nil {
			t.Fatal(err)
		}
		reqs := make([]*http.Request, via)
		for i, f := range from {
			if reqs[i], err = http.NewRequest(http.MethodGet, f, nil); err != nil {
				t.Fatal(err)
			}
		}
		return c.CheckRedirect(req, reqs)
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
	if err := check(c, "https://example.com/jwks", 1, "https://idp.example.com/jwks"); err != nil {
		t.Errorf("redirect to https refused: %v", err)
	}
	for _, loc := range []string{"http://127.0.0.1:8080/jwks", "http://localhost/"} {
		// From a plain-http loopback IdP only (TestSafeRedirectsLoopback).
		if err := check(c, loc, 1, "http://127.0.0.1:9000/jwks"); err != nil {
			t.Errorf("redirect to %s from a loopback http IdP refused: %v", loc, err)
		}
		for _, from := range []string{"https://idp.example.com/jwks", "https://127.0.0.1:9000/jwks"} {
			if err := check(c, loc, 1, from); err == nil {
				t.Errorf("redirect from %s to %s allowed", from, loc)
			}
		}
	}
	if err := check(c, "https://example.com/", 10, "https://example.com/"); err == nil {
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
	if err := check(c, "https://example.com/", 1, "https://example.com/"); !errors.Is(err, errInner) {
		t.Errorf("caller's CheckRedirect not kept: %v", err)
	}
	if err := check(c, "http://example.com/", 1, "http://127.0.0.1/"); err == nil || errors.Is(err, errInner) {
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

// TestSafeRedirectsLoopback: through a real client, a remote https IdP
// (here a TLS server) cannot redirect a fetch to plain http on this
// host's loopback (Caddy's admin API on :2019, say), which CheckURL
// accepts for a loopback IdP; a plain-http loopback IdP still may, as a
// local test IdP does.
func TestSafeRedirectsLoopback(t *testing.T) {
	var hits atomic.Int32
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer local.Close()
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, local.URL+"/config/", http.StatusFound)
	})

	remote := httptest.NewTLSServer(redirect)
	defer remote.Close()
	resp, err := idp.SafeRedirects(remote.Client()).Get(remote.URL + "/jwks")
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "refusing redirect") || hits.Load() != 0 {
		t.Errorf("https to loopback http: err %v, %d request(s) reached the loopback server; want refused, none", err, hits.Load())
	}

	loopbackIdP := httptest.NewServer(redirect)
	defer loopbackIdP.Close()
	resp, err = idp.SafeRedirects(nil).Get(loopbackIdP.URL + "/jwks")
	if err != nil {
		t.Fatalf("loopback http to loopback http: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || hits.Load() != 1 {
		t.Errorf("loopback http to loopback http: status %d, %d hit(s); want followed", resp.StatusCode, hits.Load())
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
