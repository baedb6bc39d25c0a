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
	route := func(handlers string) string { return "%s {\n\troute {\n" + handlers + "\t}\n}\n" }
	testStartLogsNeverRuns(t, nil, []neverRunsCase{
		{"reverse_proxy then sso", route("\t\treverse_proxy %s\n\t\tsso test\n"), "/", "reverse_proxy at routes[0]"},
		{"sso then reverse_proxy", route("\t\tsso test\n\t\treverse_proxy %s\n"), "/", ""},
		{"a public /health before sso", route("\t\trespond /health ok\n\t\tsso test\n\t\treverse_proxy %s\n"), "/", ""},
		{"public files (pass_thru) before sso", route("\t\tfile_server {\n\t\t\troot /nonexistent-public\n\t\t\tpass_thru\n\t\t}\n\t\tsso test\n\t\treverse_proxy %[2]s\n"), "/", ""},
		{"forward_auth before sso", route("\t\tforward_auth %[2]s {\n\t\t\turi /verify\n\t\t}\n\t\tsso test\n\t\treverse_proxy %[2]s\n"), "/", ""},
	})
}

// neverRunsCase is a Caddyfile's sites, a format given the gateway's base
// URL, the upstream's host:port and the test's own arguments, and the page
// to ask for; want is in the start's ERROR that sso never runs, "": the
// app is not served without sign-in, and nothing is logged.
type neverRunsCase struct{ name, sites, path, want string }

// testStartLogsNeverRuns starts a real Caddy on each case's sites and holds
// it to want: the page is served without a session exactly when the start
// logs one ERROR that sso never runs, and that ERROR names the server,
// want and the fix. args, when given, adds format arguments for a case.
func testStartLogsNeverRuns(t *testing.T, args func(t *testing.T) []any, cases []neverRunsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := caddytest.NewOIDC(t, "")
			a := []any{w.GW.Base, w.Upstream.HostPort()}
			if args != nil {
				a = append(a, args(t)...)
			}
			w.Sites = fmt.Sprintf(tc.sites, a...)
			w.Start()
			var errs []string
			for line := range strings.Lines(w.GW.Logs()) {
				var e struct{ Level, Msg string }
				if json.Unmarshal([]byte(line), &e) == nil && e.Level == "error" && strings.Contains(e.Msg, "never runs") {
					errs = append(errs, e.Msg)
				}
			}
			resp, err := caddytest.NewBrowser(t).NoRedirects().Get(w.GW.Base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body := caddytest.ReadBody(t, resp)
			if open := resp.StatusCode == 200; open != (tc.want != "") {
				t.Fatalf("GET %s without a session: %d %.100s, want open=%v", tc.path, resp.StatusCode, body, tc.want != "")
			}
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("logged: %q", errs)
			case tc.want != "" && len(errs) != 1:
				t.Errorf("want one ERROR that sso never runs, got %q", errs)
			case tc.want != "":
				for _, want := range []string{"server srv0:", tc.want, "put sso before it"} {
					if !strings.Contains(errs[0], want) {
						t.Errorf("the ERROR lacks %q: %s", want, errs[0])
					}
				}
			}
		})
	}
}
