package routeorder

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// Provisioned error routes, as ErrorRoutes reads them.
func eroute(hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
	return caddyhttp.Route{Handlers: hs}
}

// on is a route matched on path p; the request is for /err.
func on(p string, hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
	return caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchPath{p}}}, Handlers: hs}
}

func subroute(routes ...caddyhttp.Route) *caddyhttp.Subroute {
	return &caddyhttp.Subroute{Routes: routes}
}

var (
	respond = new(caddyhttp.StaticResponse)
	proxy   = new(reverseproxy.Handler)
	header  = new(headers.Handler)
)

// TestErrorRoutesOutcome: what Caddy's error chain (RouteList.Compile)
// does with an error: every matching route runs, in order, until a
// terminal handler answers or a terminal route ends it; a subroute whose
// routes do not match hands on to the handler, and the route, after it.
// A route that runs and holds a reverse_proxy anywhere forwards, whatever
// the matchers inside it.
func TestErrorRoutesOutcome(t *testing.T) {
	terminal := func(rt caddyhttp.Route) caddyhttp.Route { rt.Terminal = true; return rt }
	grouped := func(rt caddyhttp.Route) caddyhttp.Route { rt.Group = "g"; return rt }
	for _, tc := range []struct {
		name   string
		routes caddyhttp.RouteList
		named  map[string]*caddyhttp.Route
		want   Outcome
	}{
		{"no error routes", nil, nil, Unanswered},
		{"respond", caddyhttp.RouteList{eroute(respond)}, nil, Answered},
		{"reverse_proxy", caddyhttp.RouteList{eroute(proxy)}, nil, Forwarded},
		{"a route for other paths", caddyhttp.RouteList{on("/other", respond)}, nil, Unanswered},
		{"a route for other paths proxies, then respond", caddyhttp.RouteList{on("/other", proxy), eroute(respond)}, nil, Answered},
		{"respond, then a proxy", caddyhttp.RouteList{eroute(respond), eroute(proxy)}, nil, Answered},
		{"a header route, then one that proxies", caddyhttp.RouteList{eroute(header), eroute(proxy)}, nil, Forwarded},
		{"a header route, then one that responds", caddyhttp.RouteList{eroute(header), eroute(respond)}, nil, Answered},
		{"a header route alone: Caddy's empty answer with it", caddyhttp.RouteList{eroute(header)}, nil, Answered},
		{"a header, then a proxy, in one route", caddyhttp.RouteList{eroute(header, proxy)}, nil, Forwarded},
		{"a subroute that matches, its routes not, then a proxy",
			caddyhttp.RouteList{eroute(subroute(on("/other", respond))), eroute(proxy)}, nil, Forwarded},
		{"a subroute that matches, its routes not, then respond",
			caddyhttp.RouteList{eroute(subroute(on("/other", respond))), eroute(respond)}, nil, Answered},
		{"a subroute whose routes do not match, then a header and a proxy in its route",
			caddyhttp.RouteList{eroute(subroute(on("/other", respond)), header, proxy)}, nil, Forwarded},
		{"a terminal route whose subroute's routes do not match ends the chain",
			caddyhttp.RouteList{terminal(eroute(subroute(on("/other", respond)))), eroute(proxy)}, nil, Unanswered},
		{"a subroute that responds, then a proxy",
			caddyhttp.RouteList{eroute(subroute(on("/err", respond))), eroute(proxy)}, nil, Answered},
		{"a subroute holding a proxy for other paths: forwards, whatever its matchers",
			caddyhttp.RouteList{eroute(subroute(on("/other", proxy))), eroute(respond)}, nil, Forwarded},
		{"a group runs its first matching route only",
			caddyhttp.RouteList{grouped(eroute(header)), grouped(eroute(proxy)), eroute(respond)}, nil, Answered},
		{"file_server answers", caddyhttp.RouteList{eroute(new(fileserver.FileServer)), eroute(proxy)}, nil, Answered},
		{"file_server pass_thru hands on", caddyhttp.RouteList{eroute(&fileserver.FileServer{PassThru: true}), eroute(proxy)}, nil, Forwarded},
		{"invoke of a named route that proxies", caddyhttp.RouteList{eroute(&caddyhttp.Invoke{Name: "app"})},
			map[string]*caddyhttp.Route{"app": {Handlers: []caddyhttp.MiddlewareHandler{proxy}}}, Forwarded},
		{"invoke of a named route for other paths, then respond", caddyhttp.RouteList{eroute(&caddyhttp.Invoke{Name: "app"}), eroute(respond)},
			map[string]*caddyhttp.Route{"app": {MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/other"}}}, Handlers: []caddyhttp.MiddlewareHandler{header}}}, Answered},
		{"invoke of a named route that invokes itself, then respond: read once, no endless walk",
			caddyhttp.RouteList{eroute(&caddyhttp.Invoke{Name: "loop"}), eroute(respond)},
			map[string]*caddyhttp.Route{"loop": {Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Invoke{Name: "loop"}}}}, Answered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: tc.routes}, NamedRoutes: tc.named}
			r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/err", nil)
			r = r.WithContext(context.WithValue(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()), caddyhttp.ServerCtxKey, srv))
			var e ErrorRoutes
			for range 2 { // the second from the tree the first read
				if got := e.Outcome(r, caddyhttp.Error(http.StatusNotFound, nil)); got != tc.want {
					t.Fatalf("Outcome = %d, want %d", got, tc.want)
				}
			}
		})
	}
}
