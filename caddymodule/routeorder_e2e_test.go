package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestStartLogsSSOThatNeverRuns: a real Caddy started with sso written
// after reverse_proxy in a route block serves the app to anyone, and the
// sso app says so at start, at ERROR, naming the server and the handler.
// sso first, a matched public route before it, or handlers before it that
// pass requests on (file_server's pass_thru, forward_auth) log nothing.
func TestStartLogsSSOThatNeverRuns(t *testing.T) {
	for _, tc := range []struct {
		name, route string
		open        bool // the route serves the app without sign-in
	}{
		{"reverse_proxy then sso", "\t\treverse_proxy %s\n\t\tsso test\n", true},
		{"sso then reverse_proxy", "\t\tsso test\n\t\treverse_proxy %s\n", false},
		{"a public /health before sso", "\t\trespond /health ok\n\t\tsso test\n\t\treverse_proxy %s\n", false},
		{"public files (pass_thru) before sso", "\t\tfile_server {\n\t\t\troot /nonexistent-public\n\t\t\tpass_thru\n\t\t}\n\t\tsso test\n\t\treverse_proxy %[2]s\n", false},
		{"forward_auth before sso", "\t\tforward_auth %[2]s {\n\t\t\turi /verify\n\t\t}\n\t\tsso test\n\t\treverse_proxy %[2]s\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := caddytest.NewOIDC(t, "")
			w.Sites = fmt.Sprintf("%s {\n\troute {\n"+tc.route+"\t}\n}\n", w.GW.Base, w.Upstream.HostPort())
			w.Start()
			var errs []string
			for line := range strings.Lines(w.GW.Logs()) {
				var e struct{ Level, Msg string }
				if json.Unmarshal([]byte(line), &e) == nil && e.Level == "error" && strings.Contains(e.Msg, "never runs") {
					errs = append(errs, e.Msg)
				}
			}
			resp, err := caddytest.NewBrowser(t).NoRedirects().Get(w.GW.Base + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if open := resp.StatusCode == 200; open != tc.open {
				t.Fatalf("GET / without a session: %d, want open=%v", resp.StatusCode, tc.open)
			}
			switch {
			case !tc.open && len(errs) > 0:
				t.Errorf("logged: %q", errs)
			case tc.open && len(errs) != 1:
				t.Errorf("want one ERROR that sso never runs, got %q", errs)
			case tc.open:
				for _, want := range []string{"server srv0:", "reverse_proxy at routes[0]", "put sso before it"} {
					if !strings.Contains(errs[0], want) {
						t.Errorf("the ERROR lacks %q: %s", want, errs[0])
					}
				}
			}
		})
	}
}
