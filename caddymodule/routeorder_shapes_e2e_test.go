package caddymodule_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// fastCGIApp stands in for PHP-FPM: it answers every script with its name
// and the identity header it got.
func fastCGIApp(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		_ = fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "PHP APP script=%s user=%q", fcgi.ProcessEnv(r)["SCRIPT_FILENAME"], r.Header.Get("X-Remote-User"))
		}))
	}()
	return l.Addr().String()
}

// TestStartLogsSSOThatNeverRunsShapes: TestStartLogsSSOThatNeverRuns for
// the shapes whose proxy is not written in the route itself: invoke of a
// named route that proxies, and php_fastcgi, whose proxy sits in a route
// matched on *.php that try_files sends every other request to. Written
// before sso, both serve the app to anyone, and the start log says so.
func TestStartLogsSSOThatNeverRunsShapes(t *testing.T) {
	phpRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(phpRoot, "index.php"), []byte("<?php"), 0o600); err != nil {
		t.Fatal(err)
	}
	const php = "\troute {\n\t\tphp_fastcgi %[3]s {\n\t\t\troot %[4]s\n\t\t}\n\t\tsso test\n\t}\n"
	site := func(named, route string) string { return named + "%[1]s {\n" + route + "}\n" }
	testStartLogsNeverRuns(t, func(t *testing.T) []any { return []any{fastCGIApp(t), phpRoot} }, []neverRunsCase{
		{"invoke of a named route that proxies, then sso", site("&(app) {\n\treverse_proxy %[2]s\n}\n", "\troute {\n\t\tinvoke app\n\t\tsso test\n\t}\n"), "/",
			"reverse_proxy at named_routes.app.handle[0] (the named route app, which invoke app at routes[0]"},
		{"sso in the named route", site("&(app) {\n\tsso test\n\treverse_proxy %[2]s\n}\n", "\tinvoke app\n"), "/", ""},
		{"sso, then invoke", site("&(app) {\n\treverse_proxy %[2]s\n}\n", "\troute {\n\t\tsso test\n\t\tinvoke app\n\t}\n"), "/", ""},
		{"php_fastcgi then sso", site("", php), "/", "reverse_proxy at routes[0]"},
		{"php_fastcgi then sso, a script that does not exist", site("", php), "/admin/secret.php", "reverse_proxy at routes[0]"},
		{"sso then php_fastcgi", site("", "\troute {\n\t\tsso test\n\t\tphp_fastcgi %[3]s {\n\t\t\troot %[4]s\n\t\t}\n\t}\n"), "/", ""},
	})
}

// TestPagesNotForwardedByErrorRoutes: the gateway's refusal pages do not
// go to a handle_errors that proxies (to the app, here): it would serve
// the refused request, and the callback's code, to that server. The
// gateway shows its own page instead; an error route that answers
// itself (respond) still gets the page.
func TestPagesNotForwardedByErrorRoutes(t *testing.T) {
	const proxies = "\thandle_errors {\n\t\treverse_proxy %[2]s\n\t}\n"
	for _, tc := range []struct {
		name, sso, errors string
		denied            bool // ada signs in and is denied; otherwise the IdP is down
		status            int
		body              string
	}{
		{"IdP down, handle_errors proxies", "\tsso test\n", proxies, false, http.StatusBadGateway, "Sign-in is unavailable"},
		{"a denied user's callback, handle_errors proxies", "\tsso test {\n\t\tallow group nobody\n\t}\n", proxies, true, http.StatusForbidden, "<html"},
		{"IdP down, handle_errors responds", "\tsso test\n", "\thandle_errors {\n\t\trespond \"ours: {http.auth.sso.page}\" {err.status_code}\n\t}\n", false, http.StatusBadGateway, "ours: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := caddytest.NewOIDC(t, "")
			w.Sites = fmt.Sprintf("%[1]s {\n"+tc.sso+"\treverse_proxy %[2]s\n"+tc.errors+"}\n", w.GW.Base, w.Upstream.HostPort())
			w.Start()
			var resp *http.Response
			if tc.denied {
				resp = caddytest.NewBrowser(t).SignIn(w.GW.Base+"/private", "ada", "ada-pw")
			} else {
				_ = w.IdP.Close()
				resp = caddytest.NewBrowser(t).Get(w.GW.Base + "/private")
			}
			body := caddytest.ReadBody(t, resp)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) || strings.Contains(body, `"path"`) {
				t.Errorf("got %d %.300s, want %d with %q and not the upstream's answer", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}
