package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestEndpointMethodsAllow: the gateway's own endpoints refuse a method
// they do not take with 405 and the Allow header RFC 9110 15.5.6 requires,
// as the IdPs' endpoints do; POST /.sso/jwks.json answered the key set,
// DELETE /.sso/whoami a 401, and login and logout a 405 without Allow.
func TestEndpointMethodsAllow(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tidentity_jwt\n\t}\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPost, "/.sso/login", "GET, HEAD"},
		{http.MethodPut, "/.sso/logout", "GET, HEAD, POST"},
		{http.MethodDelete, "/.sso/whoami", "GET, HEAD"},
		{http.MethodPost, "/.sso/jwks.json", "GET, HEAD"},
		{http.MethodDelete, "/.sso/signin-failed", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(c.method, w.gw.base+c.path, strings.NewReader("x=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := newBrowser(t).noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %s, Allow %q; want 405 with Allow %q (%.80s)", c.method, c.path, resp.Status, resp.Header.Get("Allow"), c.allow, body)
		}
	}
	// The methods they take still work.
	for _, path := range []string{"/.sso/jwks.json", "/.sso/logout"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(method, w.gw.base+path, nil)
			resp, err := newBrowser(t).noRedirects().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if readBody(t, resp); resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %s, want 200", method, path, resp.Status)
			}
		}
	}
}
