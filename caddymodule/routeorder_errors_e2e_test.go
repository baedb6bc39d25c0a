package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// recordingApp is the app behind the site and its handle_errors: it
// records the paths of the requests it gets.
type recordingApp struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecordingApp(t *testing.T) *recordingApp {
	t.Helper()
	a := new(recordingApp)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		fmt.Fprintf(w, "THE APP %s", r.URL.Path)
	}))
	t.Cleanup(a.Close)
	return a
}

// take returns the requests recorded since the last take.
func (a *recordingApp) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := a.seen
	a.seen = nil
	return seen
}

// TestErrorsWithoutPageNotForwardedByErrorRoutes: the gateway's errors
// that have no page (an sso endpoint that does not exist or does not take
// the method) do not go to a handle_errors that proxies, which would
// serve the refused request to the app; the gateway answers them with
// their status. An error route that answers itself still gets them. The
// 502 of an access token the IdP cannot renew on a protected path is a
// page for a navigation, which the same rules hold, and the gateway's own
// JSON for a script, as the store's 503 is: no error route sees that.
func TestErrorsWithoutPageNotForwardedByErrorRoutes(t *testing.T) {
	const (
		proxies  = "\thandle_errors {\n\t\treverse_proxy %[2]s\n\t}\n"
		headered = "\thandle_errors 404 502 {\n\t\theader X-Error {err.status_code}\n\t}\n\thandle_errors {\n\t\treverse_proxy %[2]s\n\t}\n"
		responds = "\thandle_errors {\n\t\trespond \"ours {err.status_code}\" {err.status_code}\n\t}\n"
		// renewJSON is the gateway's answer to a script whose access
		// token the IdP cannot renew.
		renewJSON = `{"error":"the identity provider could not renew the access token; try again shortly"}`
	)
	for _, tc := range []struct {
		name, errors, method, path string
		refresh                    bool // sign in, then the IdP goes away and the access token expires
		down                       bool // the IdP is away: a navigation gets the idp_unavailable page
		html                       bool // a navigation (Accept: text/html)
		status                     int
		body                       string
	}{
		{"an unknown sso endpoint", proxies, http.MethodGet, "/.sso/nope", false, false, false, http.StatusNotFound, ""},
		{"an sso endpoint's wrong method", proxies, http.MethodDelete, "/.sso/login", false, false, false, http.StatusMethodNotAllowed, ""},
		{"a protected path whose access token cannot be renewed", proxies, http.MethodGet, "/private", true, false, false, http.StatusBadGateway, renewJSON},
		{"a page of a protected path whose access token cannot be renewed", proxies, http.MethodGet, "/private", true, false, true, http.StatusBadGateway, "token_refresh_failed"},
		{"an unknown sso endpoint, a header route before the proxy", headered, http.MethodGet, "/.sso/nope", false, false, false, http.StatusNotFound, ""},
		{"a page, a header route before the proxy", headered, http.MethodGet, "/private", false, true, true, http.StatusBadGateway, "Sign-in is unavailable"},
		{"an unknown sso endpoint, handle_errors responds", responds, http.MethodGet, "/.sso/nope", false, false, false, http.StatusNotFound, "ours 404"},
		{"a protected path whose access token cannot be renewed, handle_errors responds", responds, http.MethodGet, "/private", true, false, false, http.StatusBadGateway, renewJSON},
		{"a page of a protected path whose access token cannot be renewed, handle_errors responds", responds, http.MethodGet, "/private", true, false, true, http.StatusBadGateway, "ours 502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := caddytest.NewOIDC(t, "\t\t\tjit\n\t\t\toffline_access\n")
			app := newRecordingApp(t)
			w.Sites = fmt.Sprintf("%[1]s {\n\tsso test {\n\t\tpass_access_token\n\t\ttoken_refresh_margin 1s\n\t}\n\treverse_proxy %[2]s\n"+tc.errors+"}\n",
				w.GW.Base, strings.TrimPrefix(app.URL, "http://"))
			w.Start()
			b := caddytest.NewBrowser(t)
			if tc.refresh {
				w.IdP.SetAccessTokenTTL(2 * time.Second)
				if body := caddytest.ReadBody(t, b.SignIn(w.GW.Base+"/signed-in", "ada", "ada-pw")); !strings.Contains(body, "THE APP /signed-in") {
					t.Fatalf("sign-in ended with %.300s", body)
				}
				time.Sleep(2500 * time.Millisecond) // the last token has expired: the next request must renew it
				_ = w.IdP.Close()
				app.take()
			}
			req, err := http.NewRequest(tc.method, w.GW.Base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "application/json")
			if tc.down {
				_ = w.IdP.Close()
			}
			if tc.html {
				req.Header.Set("Accept", "text/html")
			}
			resp, err := b.NoRedirects().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := caddytest.ReadBody(t, resp)
			if seen := app.take(); len(seen) > 0 {
				t.Errorf("the app got %q", seen)
			}
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) || strings.Contains(body, "THE APP") {
				t.Errorf("got %d %.300s, want %d with %q", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

// TestPagesNotForwardedAfterHeaderErrorRoute: Caddy runs every error
// route that matches until one answers, so an error route that only sets
// a header (no matcher, first: JSON the Caddyfile does not write) hands
// the error on to the site's, which proxies. The gateway's page is not
// handed to that chain either.
func TestPagesNotForwardedAfterHeaderErrorRoute(t *testing.T) {
	w := caddytest.NewOIDC(t, "")
	app := newRecordingApp(t)
	w.Sites = fmt.Sprintf("%[1]s {\n\tsso test\n\treverse_proxy %[2]s\n\thandle_errors {\n\t\treverse_proxy %[2]s\n\t}\n}\n",
		w.GW.Base, strings.TrimPrefix(app.URL, "http://"))
	w.Start()
	req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("http://127.0.0.1:%d/config/apps/http/servers/srv0/errors/routes/0", w.GW.AdminPort),
		strings.NewReader(`{"handle": [{"handler": "headers", "response": {"set": {"X-Error": ["{http.error.status_code}"]}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := caddytest.ReadBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("adding the header route: %d %s", resp.StatusCode, body)
	}
	w.GW.WaitReady()
	_ = w.IdP.Close()
	resp = caddytest.NewBrowser(t).Get(w.GW.Base + "/private")
	body := caddytest.ReadBody(t, resp)
	if seen := app.take(); len(seen) > 0 {
		t.Errorf("the app got %q", seen)
	}
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "Sign-in is unavailable") {
		t.Errorf("got %d %.300s, want the gateway's 502 page", resp.StatusCode, body)
	}
}
