package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/exampletest"
)

// TestReadmePreflightRecipe runs the Caddyfile of the README's "Calls
// from another origin" as written (its address, IdP and app changed):
// another origin's preflight gets Caddy's 204 with the CORS headers, not
// sso's 401, and reaches neither sso nor the app; the credentialed call
// that follows reaches the app with the person's identity, the app's CORS
// headers on its answer; the same call without a session gets sso's 401.
// A handle @preflight beside a site-level sso would not do (sso is
// ordered before handle): the README says so, and the recipe moves sso
// into a handle of its own.
func TestReadmePreflightRecipe(t *testing.T) {
	const portal = "https://portal.example.com"
	reached := make(chan string, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.Method + " " + r.URL.Path
		// The app's own CORS headers on its answers, as the README asks.
		w.Header().Set("Access-Control-Allow-Origin", portal)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"user": r.Header.Get("X-Forwarded-Email")})
	}))
	t.Cleanup(app.Close)
	next := func() string {
		t.Helper()
		select {
		case got := <-reached:
			return got
		case <-time.After(10 * time.Second):
			t.Fatal("the app got no request")
			return ""
		}
	}

	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = exampletest.DocBlock(t, "../README.md", "#### Calls from another origin", "caddyfile",
		"app.example.com {", w.gw.base+" {",
		"sso corp", "sso test",
		"127.0.0.1:8080", strings.TrimPrefix(app.URL, "http://"))
	w.start()
	b := newBrowser(t)
	if resp := b.signIn(w.gw.base+"/", "ada", "ada-pw"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %s %s", resp.Status, readBody(t, resp))
	}
	next() // the page the sign-in came back to

	call := func(c *http.Client, method string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, w.gw.base+"/api/save", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", portal)
		req.Header.Set("Sec-Fetch-Site", "same-site")
		req.Header.Set("Sec-Fetch-Mode", "cors")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readBody(t, resp)
	}

	// The preflight, as browsers send it: without cookies, signed in or
	// not (with the session cookie, a handle beside sso would pass).
	resp, body := call(http.DefaultClient, http.MethodOptions, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != portal ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.EqualFold(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("the preflight got %s %q, headers %v; want the recipe's 204 with its CORS headers", resp.Status, body, resp.Header)
	}

	// The credentialed call itself, with the session cookie.
	resp, body = call(b.client, http.MethodPost, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"user":"ada@example.com"`) ||
		resp.Header.Get("Access-Control-Allow-Origin") != portal || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("the credentialed call got %s %q, headers %v; want the app's answer for ada, with its CORS headers", resp.Status, body, resp.Header)
	}
	if got := next(); got != "POST /api/save" {
		t.Errorf("the app got %q, want the call (and no preflight)", got)
	}
	select {
	case got := <-reached:
		t.Errorf("the app also got %q", got)
	default:
	}

	// Without a session, the call stays behind sso.
	resp, body = call(http.DefaultClient, http.MethodPost, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"login"`) {
		t.Errorf("the call without a session got %s %q, want sso's 401", resp.Status, body)
	}
	select {
	case got := <-reached:
		t.Errorf("a call without a session reached the app: %q", got)
	default:
	}
}
