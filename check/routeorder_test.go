package check_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/check"
)

// checkOkta runs the check on a Caddyfile whose IdP okta is unreachable
// (its probes fail at once): globals go in the global options, sites after
// them.
func checkOkta(t *testing.T, globals, sites string) *check.Report {
	t.Helper()
	r, _ := checkAdapted(t, "{\n"+globals+"\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\n"+sites)
	return r
}

// checkAdapted adapts cf, runs the check on it (probes time out after a
// second) and returns the report and what it prints.
func checkAdapted(t *testing.T, cf string) (*check.Report, string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	r, err := check.Run(context.Background(), cfg, &http.Client{Timeout: time.Second}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	return r, b.String()
}

// problemsOf is checkOkta's configuration-wide findings.
func problemsOf(t *testing.T, globals, sites string) []check.Finding {
	t.Helper()
	return checkOkta(t, globals, sites).Problems
}

// routeOrderCase is a site of https://app.example.com (named: the named
// routes written before it) and what check's error that its sso never runs
// must name; want "": no such error.
type routeOrderCase struct{ name, named, site, want string }

// testRouteOrder runs each case and holds the error to naming the server,
// want, what it means and the fix.
func testRouteOrder(t *testing.T, cases []routeOrderCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range problemsOf(t, "", tc.named+"https://app.example.com {\n"+tc.site+"}\n") {
				if p.Level == check.Error && strings.Contains(p.Message, "never runs") {
					got = append(got, p.Message)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("reported: %q", got)
			case tc.want != "" && len(got) != 1:
				t.Errorf("want one error naming %s, got %q", tc.want, got)
			case tc.want != "":
				for _, w := range []string{"server srv0:", tc.want, "served without sign-in", "put sso before it: first in the route block"} {
					if !strings.Contains(got[0], w) {
						t.Errorf("error lacks %q: %s", w, got[0])
					}
				}
			}
		})
	}
}

// TestCheckSSOAfterTerminalHandler: sso written after a handler that
// answers every request never runs, and the app is served to anyone;
// check reports it as an error naming the server, the handler and the
// fix. A matched public route before sso, and sso first, are fine.
func TestCheckSSOAfterTerminalHandler(t *testing.T) {
	testRouteOrder(t, []routeOrderCase{
		{"reverse_proxy then sso in a route", "", "\troute {\n\t\treverse_proxy 127.0.0.1:8080\n\t\tsso okta\n\t}\n", "reverse_proxy at routes[0]"},
		{"respond then sso in a route", "", "\troute {\n\t\trespond hello\n\t\tsso okta\n\t}\n", "static_response at routes[0]"},
		{"an unmatched handle answers first", "", "\troute {\n\t\thandle {\n\t\t\tfile_server\n\t\t}\n\t\tsso okta\n\t\treverse_proxy 127.0.0.1:8080\n\t}\n", "file_server at routes[0]"},
		{"sso first in a route", "", "\troute {\n\t\tsso okta\n\t\treverse_proxy 127.0.0.1:8080\n\t}\n", ""},
		{"the directive order", "", "\treverse_proxy 127.0.0.1:8080\n\tsso okta\n", ""},
		{"a public /health before sso", "", "\troute {\n\t\trespond /health ok\n\t\tsso okta\n\t\treverse_proxy 127.0.0.1:8080\n\t}\n", ""},
		{"public files served first, the rest signed in", "", "\troute {\n\t\tfile_server {\n\t\t\tpass_thru\n\t\t}\n\t\tsso okta\n\t\treverse_proxy 127.0.0.1:8080\n\t}\n", ""},
		{"a reverse_proxy that only replaces error pages, then sso", "", "\troute {\n\t\treverse_proxy 127.0.0.1:8080 {\n\t\t\t@err status 5xx\n\t\t\thandle_response @err {\n\t\t\t\trespond \"down\" 503\n\t\t\t}\n\t\t}\n\t\tsso okta\n\t}\n", "reverse_proxy at routes[0]"},
		{"forward_auth before sso", "", "\troute {\n\t\tforward_auth 127.0.0.1:9091 {\n\t\t\turi /verify\n\t\t}\n\t\tsso okta\n\t\treverse_proxy 127.0.0.1:8080\n\t}\n", ""},
	})
}

// TestCheckPlainHTTPSite: for a plain-http site on a host that is not
// loopback, the http:// values check prints are not what sign-in meets:
// behind trusted_proxies the gateway builds https:// ones from
// X-Forwarded-Proto (base_url pins them), and without a proxy browsers
// drop the Secure cookies. Loopback, https and a pinned base_url are fine.
// A site of several hosts is warned once per host, never told to set
// base_url: its one sso serves each host at its own origin, and pinned to
// one, the others' sign-ins would go there (docs/forward-auth.md).
func TestCheckPlainHTTPSite(t *testing.T) {
	const proxies = "\tservers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t}\n"
	const site = "\tsso okta\n\treverse_proxy 127.0.0.1:8080\n}\n"
	const twoHosts = "http://app.example.com, http://wiki.example.com {\n" + site
	for _, tc := range []struct{ name, globals, site, want string }{
		{"two hosts behind trusted_proxies", proxies, twoHosts, "register those (no base_url: this sso serves each of the site's hosts at its own origin)"},
		{"two hosts, no proxy", "", twoHosts, "keep the site without base_url"},
		{"behind trusted_proxies", proxies, "http://app.example.com {\n" + site, "X-Forwarded-Proto and X-Forwarded-Host (https://app.example.com/…"},
		{"behind trusted_proxies, the fix", proxies, "http://app.example.com {\n" + site, "set base_url https://app.example.com"},
		{"no proxy", "", "http://app.example.com:8080 {\n" + site, "browsers drop the Secure session and sign-in cookies over plain http"},
		{"pinned by base_url", proxies, "http://app.example.com {\n\tsso okta {\n\t\tbase_url https://app.example.com\n\t}\n\treverse_proxy 127.0.0.1:8080\n}\n", ""},
		{"loopback", proxies, "http://localhost:8080 {\n" + site, ""},
		{"https", proxies, "app.example.com {\n" + site, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range problemsOf(t, tc.globals, tc.site) {
				if p.Level == check.Warn && strings.Contains(p.Message, "plain http") {
					got = append(got, p.Message)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("warned: %q", got)
			case tc.want != "" && len(got) != strings.Count(tc.site, "http://"):
				t.Errorf("want one warning per host saying %q, got %q", tc.want, got)
			}
			for _, msg := range got {
				if !strings.Contains(msg, tc.want) {
					t.Errorf("warning %q, want it to say %q", msg, tc.want)
				}
				if strings.Count(tc.site, "http://") > 1 && strings.Contains(msg, "set base_url") {
					t.Errorf("a site of several hosts told to set base_url: %q", msg)
				}
			}
		})
	}
}

// TestCheckInterceptBeforeSSOModes: an error-page intercept that runs
// before sso (in a route block) is reported only for a verify mode, whose
// 401 a forward-auth proxy reads; a protect-mode sso guards the app it sits
// in front of, so a 2xx error page there lets no one in.
func TestCheckInterceptBeforeSSOModes(t *testing.T) {
	const intercept = "\t\tintercept {\n\t\t\t@err status 4xx 5xx\n\t\t\thandle_response @err {\n\t\t\t\trespond \"sign in\" 200\n\t\t\t}\n\t\t}\n"
	for _, tc := range []struct {
		mode string
		want bool
	}{
		{"", false},
		{"protect", false},
		{"auth_request", true},
		{"forward_auth", true},
	} {
		t.Run("mode "+tc.mode, func(t *testing.T) {
			mode := ""
			if tc.mode != "" {
				mode = "\t\t\tmode " + tc.mode + "\n"
			}
			site := "https://app.example.com {\n\troute {\n" + intercept + "\t\tsso okta {\n" + mode + "\t\t}\n\t\trespond app\n\t}\n}\n"
			got := hasFinding(problemsOf(t, "", site), "answers through the intercept")
			if got != tc.want {
				t.Errorf("reported: %v, want %v\n%s", got, tc.want, site)
			}
		})
	}
}
