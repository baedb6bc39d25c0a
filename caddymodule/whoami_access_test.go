package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestWhoamiFollowsAccessRules: /.sso/whoami answers a person the route's
// rules refuse as every other path of the route does, 403 (JSON for a
// script, the "Access denied" page for a navigation), and tells nothing of
// the profile: an app that asks who is signed in before showing itself
// must not show itself and then fail every call.
func TestWhoamiFollowsAccessRules(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n")
	w.Sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tallow group nobody\n\t}\n\treverse_proxy %s\n}\n", w.GW.Base, w.Upstream.HostPort())
	w.Start()
	b := newBrowser(t)
	readBody(t, b.signIn(w.GW.Base+"/", "ada", "ada-pw"))

	for _, tc := range []struct {
		name   string
		header []string
		want   string
	}{
		{"script", []string{"Accept", "application/json", "Sec-Fetch-Mode", "cors"}, `"access denied"`},
		{"navigation", []string{"Accept", "text/html", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}, "Access denied"},
	} {
		req, err := http.NewRequest(http.MethodGet, w.GW.Base+"/.sso/whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(tc.header); i += 2 {
			req.Header.Set(tc.header[i], tc.header[i+1])
		}
		resp, err := b.noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tc.want) {
			t.Errorf("%s: whoami of a refused person: %d %q; want 403 with %s", tc.name, resp.StatusCode, body, tc.want)
		}
		if strings.Contains(body, "ada@") || strings.Contains(body, `"groups"`) {
			t.Errorf("%s: whoami of a refused person tells the profile: %s", tc.name, body)
		}
	}
}
