package check_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/check"
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

// TestCheckSSOInNamedRoute: a site that invokes a named route holding sso
// uses its IdP; check lists the site and the values to register for it.
func TestCheckSSOInNamedRoute(t *testing.T) {
	r := checkOkta(t, "", "&(app) {\n\tsso okta\n\treverse_proxy 127.0.0.1:8080\n}\nhttps://app.example.com {\n\tinvoke app\n}\n")
	ic := r.IdPs[0]
	if !slices.Equal(ic.Sites, []string{"https://app.example.com"}) {
		t.Errorf("sites %q, want the site that invokes the named route", ic.Sites)
	}
	for _, c := range ic.Checks {
		if strings.Contains(c.Message, "no site uses this IdP") {
			t.Errorf("reported: %s", c.Message)
		}
	}
	if !slices.Contains(ic.Values, check.Value{Field: "Redirect URI", Site: "https://app.example.com", Value: "https://app.example.com/.sso/oidc/okta/callback"}) {
		t.Errorf("no Redirect URI for the site: %+v", ic.Values)
	}
}
