package check_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/check"
	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestCheckSSOAfterTerminalShapes: the route-order rule follows invoke
// into its named route and counts php_fastcgi as answering every request
// its try_files sends to index.php; sso after either is reported, naming
// the named route and the invoke. sso first, or in the named route before
// its proxy, is fine, and a named route that invokes itself ends the walk.
func TestCheckSSOAfterTerminalShapes(t *testing.T) {
	const app = "&(app) {\n\treverse_proxy 127.0.0.1:8080\n}\n"
	testRouteOrder(t, []routeOrderCase{
		{"invoke of a named route that proxies, then sso", app, "\troute {\n\t\tinvoke app\n\t\tsso okta\n\t}\n",
			"reverse_proxy at named_routes.app.handle[0] (the named route app, which invoke app at routes[0].handle[0].routes[0].handle[0].routes[0].handle[0] runs)"},
		{"invoke then sso, outside a route block", app, "\tinvoke app\n\tsso okta\n", ""},
		{"sso, then invoke", app, "\troute {\n\t\tsso okta\n\t\tinvoke app\n\t}\n", ""},
		{"sso in the named route", "&(app) {\n\tsso okta\n\treverse_proxy 127.0.0.1:8080\n}\n", "\tinvoke app\n", ""},
		{"a named route that invokes itself", "&(app) {\n\tinvoke app\n}\n", "\troute {\n\t\tinvoke app\n\t\tsso okta\n\t\treverse_proxy 127.0.0.1:8080\n\t}\n", ""},
		{"php_fastcgi then sso", "", "\troute {\n\t\tphp_fastcgi 127.0.0.1:9000\n\t\tsso okta\n\t}\n",
			"reverse_proxy at routes[0].handle[0].routes[0].handle[0].routes[2].handle[0]"},
		{"sso then php_fastcgi", "", "\troute {\n\t\tsso okta\n\t\tphp_fastcgi 127.0.0.1:9000\n\t}\n", ""},
		{"php_fastcgi, the directive order", "", "\tphp_fastcgi 127.0.0.1:9000\n\tsso okta\n", ""},
	})
}

// TestCheckSSOInNamedRoute: an sso handler in a named route counts as
// guarded by no host matcher, whatever the site that invokes it matches,
// as the gateway counts it (routeorder.Guards): without base_url check
// reports the refusal every sign-in there meets (base_url_required), with
// the advice the gateway logs, and prints no value on the site's host;
// with base_url it prints the values on base_url. The same holds for a
// route of a JSON config whose matcher sets do not all have a host: any
// Host reaches it.
func TestCheckSSOInNamedRoute(t *testing.T) {
	const site = "https://app.example.com {\n\tinvoke app\n}\n"
	named := func(directive string) string {
		return "&(app) {\n\t" + directive + "\n\treverse_proxy 127.0.0.1:8080\n}\n" + site
	}
	const advice = "server srv0: the sso handler in the named route app has no base_url, so it refuses to start sign-ins (base_url_required): " + gateway.NamedRouteAdvice
	for _, tc := range []struct {
		name    string
		report  func(t *testing.T) *check.Report
		problem string // "" none
		want    string // the Redirect URI's origin
	}{
		{"in a named route", func(t *testing.T) *check.Report { return checkOkta(t, "", named("sso okta")) },
			advice, "http://<host>:443"},
		{"in a named route, with base_url", func(t *testing.T) *check.Report {
			return checkOkta(t, "", named("sso okta {\n\t\tbase_url https://sso.example.com\n\t}"))
		}, "", "https://sso.example.com"},
		{"a matcher set without host", func(t *testing.T) *check.Report {
			return checkEdited(t, "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\napp.example.com {\n\tsso okta\n\trespond app\n}\n",
				func(srv map[string]any) {
					rt := srv["routes"].([]any)[0].(map[string]any)
					rt["match"] = append(rt["match"].([]any), map[string]any{"path": []any{"/app/*"}})
				})
		}, "server srv0: an sso route matches no host and has no base_url", "http://<host>:443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.report(t)
			if tc.problem != "" && !slices.ContainsFunc(r.Problems, func(f check.Finding) bool {
				return f.Level == check.Error && strings.HasPrefix(f.Message, tc.problem)
			}) {
				t.Errorf("problems %+v, want the error %q", r.Problems, tc.problem)
			}
			if tc.problem == "" && len(r.Problems) > 0 {
				t.Errorf("problems %+v, want none", r.Problems)
			}
			if got, want := fieldValues(r, "okta", "Redirect URI"), []string{tc.want + "/.sso/oidc/okta/callback"}; !slices.Equal(got, want) {
				t.Errorf("Redirect URI %q, want %q (none on the site's host)", got, want)
			}
			for _, c := range r.IdPs[0].Checks {
				if strings.Contains(c.Message, "no site uses this IdP") {
					t.Errorf("reported: %s", c.Message)
				}
			}
		})
	}
}

// TestCheckNamedRouteAgreesWithGateway: check and the running gateway
// decide by one rule (routeorder.Guards) whether a site's host is vouched
// for. A site that invokes a named route holding sso: check reports the
// refusal, and Caddy refuses the sign-in (base_url_required) with the
// same advice in its log, not the advice to give the site the host name
// it already has. With base_url, check prints the Redirect URI that
// sign-in sends, and the sign-in completes with it registered.
func TestCheckNamedRouteAgreesWithGateway(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n")
	// In a route block: Caddy 2.11 keeps only the first handler of a
	// named route's one unmatched route (httpcaddyfile's simplification).
	sites := func(directive string) string {
		return "&(app) {\n\troute {\n\t\t" + directive + "\n\t\treverse_proxy " + w.Upstream.HostPort() + "\n\t}\n}\n" + w.GW.Base + " {\n\tinvoke app\n}\n"
	}

	w.Sites = sites("sso test")
	r := checkJSON(t, checkCaddyfile(t, w.Caddyfile()))
	if r.OK || !hasFinding(r.Problems, "error: server srv0: the sso handler in the named route app has no base_url") {
		t.Errorf("check: OK %v, problems %+v; want the named route's base_url_required error", r.OK, r.Problems)
	}
	w.Start()
	resp, err := caddytest.NewBrowser(t).TryGet(w.GW.Base + "/")
	if err != nil {
		t.Fatal(err)
	}
	if body := caddytest.ReadBody(t, resp); resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, gateway.PageBaseURLRequired) {
		t.Errorf("the gateway answered %d %.200s; want the base_url_required page", resp.StatusCode, body)
	}
	if logs := w.GW.Logs(); !strings.Contains(logs, gateway.NamedRouteAdvice) || !strings.Contains(logs, `"named_route":"app"`) {
		t.Errorf("the gateway's log does not give the named route's advice:\n%s", logs)
	}

	w.Sites = sites("sso test {\n\t\t\tbase_url " + w.GW.Base + "\n\t\t}")
	r = checkJSON(t, checkCaddyfile(t, w.Caddyfile()))
	registered := w.GW.Base + "/.sso/oidc/test/callback" // caddytest.NewOIDC registers it
	if redirect := fieldValues(r, "test", "Redirect URI"); !r.OK || !slices.Equal(redirect, []string{registered}) {
		t.Errorf("with base_url, check: OK %v, problems %+v, Redirect URI %q; want %s", r.OK, r.Problems, redirect, registered)
	}
	w.GW.Reload(w.Caddyfile())
	resp, err = caddytest.NewBrowser(t).TrySignIn(w.GW.Base+"/", "ada", "ada-pw")
	if err != nil {
		t.Fatalf("with base_url, the sign-in fails: %v", err)
	}
	if body := caddytest.ReadBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "X-Forwarded-User") {
		t.Errorf("with base_url, no sign-in: %d %.300s", resp.StatusCode, body)
	}
}
