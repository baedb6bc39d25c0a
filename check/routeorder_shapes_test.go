package check_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/check"
)

// TestCheckSSOAfterTerminalShapes: the route-order rule follows invoke
// into its named route and counts php_fastcgi as answering every request
// its try_files sends to index.php; sso after either is reported, naming
// the named route and the invoke. sso first, or in the named route before
// its proxy, is fine, and a named route that invokes itself ends the walk.
func TestCheckSSOAfterTerminalShapes(t *testing.T) {
	const app = "&(app) {\n\treverse_proxy 127.0.0.1:8080\n}\n"
	for _, tc := range []struct{ name, named, site, want string }{
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
	} {
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
				for _, w := range []string{tc.want, "server srv0:", "served without sign-in", "put sso before it"} {
					if !strings.Contains(got[0], w) {
						t.Errorf("error lacks %q: %s", w, got[0])
					}
				}
			}
		})
	}
}

// TestCheckSSOInNamedRoute: a site that invokes a named route holding sso
// uses its IdP; check lists the site and the values to register for it.
func TestCheckSSOInNamedRoute(t *testing.T) {
	const cf = "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\n" +
		"&(app) {\n\tsso okta\n\treverse_proxy 127.0.0.1:8080\n}\nhttps://app.example.com {\n\tinvoke app\n}\n"
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := check.Run(context.Background(), cfg, &http.Client{Timeout: time.Second}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
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
