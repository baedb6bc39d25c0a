package routeorder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy/fastcgi"
)

// ssoHandler stands for the gateway's handler (caddymodule, which imports
// this package): what FromApp and ServerGuard look for is a provisioned
// handler whose module is http.handlers.sso.
type ssoHandler struct{ site string }

func (*ssoHandler) CaddyModule() caddy.ModuleInfo { return caddy.ModuleInfo{ID: "http.handlers.sso"} }

func (*ssoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

func route(hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
	return caddyhttp.Route{Handlers: hs}
}

func onHost(hosts caddyhttp.MatchHost, hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
	return caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{&hosts}}, Handlers: hs}
}

// TestFromApp: the start-time check reads the provisioned http app as
// `caddy sso check` reads the adapted JSON: a matched route answers only
// some requests, an unmatched one all; subroutes and named routes run in
// place; file_server's pass_thru and a handle_response that can call next
// (forward_auth's) pass requests on; php_fastcgi's proxy ends its list.
func TestFromApp(t *testing.T) {
	fcgi := &reverseproxy.Handler{Transport: &fastcgi.Transport{}}
	copyHeaders := []caddyhttp.ResponseHandler{{Routes: caddyhttp.RouteList{route(header)}}}
	replaceErrors := []caddyhttp.ResponseHandler{{Routes: caddyhttp.RouteList{route(respond)}}}
	for _, tc := range []struct {
		name   string
		routes caddyhttp.RouteList
		named  map[string]*caddyhttp.Route
		want   []string // Terminal of each finding
	}{
		{"sso first", caddyhttp.RouteList{route(new(ssoHandler), proxy)}, nil, nil},
		{"an unmatched proxy, then sso", caddyhttp.RouteList{route(proxy), route(new(ssoHandler))}, nil, []string{"reverse_proxy"}},
		{"a matched public respond, then sso", caddyhttp.RouteList{on("/health", respond), route(new(ssoHandler), proxy)}, nil, nil},
		// A path of every request is no condition (EveryPath).
		{"a proxy on /*, then sso", caddyhttp.RouteList{on("/*", proxy), route(new(ssoHandler))}, nil, []string{"reverse_proxy"}},
		{"a proxy on *, then sso", caddyhttp.RouteList{on("*", proxy), route(new(ssoHandler))}, nil, []string{"reverse_proxy"}},
		{"a route block: proxy, then sso", caddyhttp.RouteList{route(subroute(route(proxy), route(new(ssoHandler))))}, nil, []string{"reverse_proxy"}},
		{"an invoke of a named route that proxies, then sso", caddyhttp.RouteList{route(&caddyhttp.Invoke{Name: "app"}), route(new(ssoHandler))},
			map[string]*caddyhttp.Route{"app": {Handlers: []caddyhttp.MiddlewareHandler{proxy}}}, []string{"reverse_proxy"}},
		{"file_server pass_thru, then sso", caddyhttp.RouteList{route(&fileserver.FileServer{PassThru: true}, new(ssoHandler))}, nil, nil},
		{"file_server, then sso", caddyhttp.RouteList{route(new(fileserver.FileServer), new(ssoHandler))}, nil, []string{"file_server"}},
		{"forward_auth's proxy, then sso", caddyhttp.RouteList{route(&reverseproxy.Handler{HandleResponse: copyHeaders}, new(ssoHandler))}, nil, nil},
		{"a proxy that replaces error pages, then sso",
			caddyhttp.RouteList{route(&reverseproxy.Handler{HandleResponse: replaceErrors}, new(ssoHandler))}, nil, []string{"reverse_proxy"}},
		{"php_fastcgi, then sso", caddyhttp.RouteList{route(subroute(on("*.php", fcgi))), route(new(ssoHandler))}, nil, []string{"reverse_proxy"}},
		{"a matched proxy over http, then sso", caddyhttp.RouteList{route(subroute(on("/api/*", proxy))), route(new(ssoHandler))}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &caddyhttp.App{Servers: map[string]*caddyhttp.Server{"srv0": {Routes: tc.routes, NamedRoutes: tc.named}}}
			var got []string
			for _, f := range FromApp(app) {
				if f.Server != "srv0" {
					t.Errorf("finding for server %q", f.Server)
				}
				got = append(got, f.Terminal)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings %v, want %v", got, tc.want)
			}
		})
	}
	if FromApp("not the http app") != nil {
		t.Error("findings for another app")
	}
}

// TestFromAppServersInOrder: the findings come by server name, the same
// at every start.
func TestFromAppServersInOrder(t *testing.T) {
	servers := map[string]*caddyhttp.Server{}
	var want []string
	for i := range 8 {
		n := fmt.Sprintf("srv%d", i)
		servers[n] = &caddyhttp.Server{Routes: caddyhttp.RouteList{route(proxy), route(new(ssoHandler))}}
		want = append(want, n)
	}
	app := &caddyhttp.App{Servers: servers}
	for range 5 {
		var got []string
		for _, f := range FromApp(app) {
			got = append(got, f.Server)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("servers %v, want %v", got, want)
		}
	}
}

// TestServerGuard: what guards a provisioned sso handler, found in the
// server's routes, a subroute's error routes, or the server's error
// routes, with the hosts Caddy provisioned; a handler in none of them is
// not found (nothing vouches for its Host).
func TestServerGuard(t *testing.T) {
	site, inErrors, inServerErrors, inNamed, elsewhere := &ssoHandler{"site"}, &ssoHandler{"sub errors"}, &ssoHandler{"server errors"}, &ssoHandler{"named"}, &ssoHandler{"elsewhere"}
	siteRoutes := subroute(route(site, proxy))
	siteRoutes.Errors = &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{route(inErrors)}}
	srv := &caddyhttp.Server{
		Routes: caddyhttp.RouteList{
			onHost(caddyhttp.MatchHost{"app.example.com"}, siteRoutes),
			onHost(caddyhttp.MatchHost{"b.example.com"}, &caddyhttp.Invoke{Name: "shared"}),
		},
		Errors:      &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{onHost(caddyhttp.MatchHost{"err.example.com"}, inServerErrors)}},
		NamedRoutes: map[string]*caddyhttp.Route{"shared": {Handlers: []caddyhttp.MiddlewareHandler{inNamed}}},
	}
	for _, tc := range []struct {
		target *ssoHandler
		ok     bool
		hosts  [][]string
		named  string
	}{
		{site, true, [][]string{{"app.example.com"}}, ""},
		{inErrors, true, [][]string{{"app.example.com"}}, ""},
		{inServerErrors, true, [][]string{{"err.example.com"}}, ""},
		{inNamed, true, nil, "shared"},
		{elsewhere, false, nil, ""},
	} {
		g, ok := ServerGuard(srv, tc.target)
		if ok != tc.ok || !slices.EqualFunc(g.Hosts, tc.hosts, slices.Equal) || g.Named != tc.named {
			t.Errorf("%s: ServerGuard = %+v, %v; want hosts %v, named %q, %v", tc.target.site, g, ok, tc.hosts, tc.named, tc.ok)
		}
		if ok && g.Handler.Value != any(tc.target) {
			t.Errorf("%s: the guard of another handler", tc.target.site)
		}
	}
	// A host matcher built by hand (not provisioned) is a value.
	byValue := &caddyhttp.Server{Routes: caddyhttp.RouteList{{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchHost{"v.example.com"}}}, Handlers: []caddyhttp.MiddlewareHandler{site}}}}
	if g, ok := ServerGuard(byValue, site); !ok || !slices.EqualFunc(g.Hosts, [][]string{{"v.example.com"}}, slices.Equal) {
		t.Errorf("a MatchHost value: %+v, %v", g, ok)
	}
}

// errMatcher is a matcher that fails, as a CEL expression or a file
// matcher can at request time.
type errMatcher struct{}

func (errMatcher) MatchWithError(*http.Request) (bool, error) {
	return false, errors.New("matcher failed")
}

// TestErrorRoutesOutcomeEdges: a server without handle_errors leaves every
// error unanswered, and a matcher that fails ends the error chain there,
// as Caddy's compiled chain returns the matcher's error: the routes after
// it, a proxy among them, never run.
func TestErrorRoutesOutcomeEdges(t *testing.T) {
	req := func(srv *caddyhttp.Server) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/err", nil)
		return r.WithContext(context.WithValue(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()), caddyhttp.ServerCtxKey, srv))
	}
	var e ErrorRoutes
	if got := e.Outcome(req(&caddyhttp.Server{}), caddyhttp.Error(http.StatusForbidden, nil)); got != Unanswered {
		t.Errorf("no handle_errors: Outcome = %d, want Unanswered", got)
	}
	failing := caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{errMatcher{}}}, Handlers: []caddyhttp.MiddlewareHandler{respond}}
	for _, tc := range []struct {
		name   string
		routes caddyhttp.RouteList
		want   Outcome
	}{
		{"a failing matcher, then a proxy", caddyhttp.RouteList{failing, eroute(proxy)}, Unanswered},
		{"a header, a failing matcher, then a proxy", caddyhttp.RouteList{eroute(header), failing, eroute(proxy)}, Answered},
	} {
		srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: tc.routes}}
		if got := new(ErrorRoutes).Outcome(req(srv), caddyhttp.Error(http.StatusForbidden, nil)); got != tc.want {
			t.Errorf("%s: Outcome = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestGuardsSiblings: sibling routes deep in host-matched routes each keep
// their own hosts: the guards of one are not overwritten by the next's.
func TestGuardsSiblings(t *testing.T) {
	host := func(h string, handlers ...Handler) Route { return onHosts([][]string{{h}}, handlers...) }
	routes := []Route{host("a", sub(host("b", sub(host("c", sub(host("d", h(SSO)), host("e", h(SSO))))))))}
	var got [][][]string
	for _, g := range Guards(routes) {
		got = append(got, g.Hosts)
	}
	want := [][][]string{{{"a"}, {"b"}, {"c"}, {"d"}}, {{"a"}, {"b"}, {"c"}, {"e"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Guards hosts %v, want %v", got, want)
	}
}

// TestTerminalModules: each module that answers every request reaching it
// keeps an sso handler after it from running, and the finding names the
// Caddyfile directive to move; modules that call the next handler (and
// acme_server, which passes on paths outside its prefix) do not.
func TestTerminalModules(t *testing.T) {
	for module, directive := range map[string]string{
		"reverse_proxy": "reverse_proxy or php_fastcgi", "static_response": "respond or redir", "file_server": "file_server",
		"sso_scim": "sso_scim", "metrics": "metrics", "copy_response": "copy_response",
	} {
		got := Unprotected([]Route{r(h(module), h(SSO))})
		if len(got) != 1 || got[0].Terminal != module || !strings.Contains(got[0].String(), "(Caddyfile: "+directive+")") {
			t.Errorf("%s, then sso: findings %v", module, got)
		}
	}
	for _, module := range []string{"acme_server", "headers", "encode", "rewrite", "some_plugin"} {
		if got := Unprotected([]Route{r(h(module), h(SSO))}); len(got) != 0 {
			t.Errorf("%s, then sso: findings %v, want none", module, got)
		}
	}
}

// TestFirstTerminalReported: the finding names the handler that answers
// first, the one to move sso before; a php_fastcgi proxy after a respond
// in a matched route never runs, so it does not end the list.
func TestFirstTerminalReported(t *testing.T) {
	got := Unprotected([]Route{r(h("static_response"), h("reverse_proxy"), h(SSO))})
	want := []Finding{{Terminal: "static_response", At: "routes[0].handle[0]", SSO: "routes[0].handle[2]"}}
	if !slices.Equal(got, want) {
		t.Errorf("findings %+v, want %+v", got, want)
	}
	fcgi := Handler{Module: "reverse_proxy", Transport: FastCGI}
	if got := Unprotected([]Route{matched(h("static_response"), fcgi), r(h(SSO))}); len(got) != 0 {
		t.Errorf("a matched respond before php_fastcgi, then sso: findings %+v, want none", got)
	}
}
