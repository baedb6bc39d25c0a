// Package routeorder holds the rules about where in Caddy's routes an sso
// handler sits: which sso handlers never run because a handler that
// answers every request comes before them (`route { reverse_proxy …;
// sso okta }` serves the app to anyone, and Caddy keeps the written order
// inside route), and which host matchers guard an sso handler (Guards);
// and whether routes answer every request (Answers), which a forward-auth
// listener's catch-all site must.
// The rules work on an abstract route tree, fed from the adapted JSON
// (`caddy sso check`) and from the provisioned http app (the sso app at
// start, FromApp; each handler at its first request, ServerGuard), so
// both say the same thing.
package routeorder

import (
	"fmt"
	"slices"
	"strings"
)

// SSO is the module name of the handler the rule protects.
const SSO = "sso"

// Route is one route of a route list.
type Route struct {
	// Matched: the route has matchers, so it runs only for some requests
	// (a public /health before sso is fine); a set that matches every
	// request (a path of EveryPath alone: handle /*) is none.
	Matched bool
	// Hosts has, for each matcher set, the hosts of its host matcher (nil
	// for a set without one): what Guards reads.
	Hosts    [][]string
	Handlers []Handler
	// Match, when the route has matchers, reports whether a GET of a path
	// on a host matches them, known false when they read more than path
	// and host (pathHost, AdaptedMatch); Group and Terminal are Caddy's
	// (only the first matching route of a group runs; no route after a
	// terminal one does). What Reach runs a request by.
	Match    func(host, path string) (ok, known bool)
	Group    string
	Terminal bool
}

// Handler is one handler of a route, by module name (the "handler" of the
// adapted JSON); Routes are a subroute's, or for invoke the one route of
// the named route Name (the server's named_routes), which runs in its
// place: `route { invoke app; sso okta }` with &(app) proxying serves the
// app as `route { reverse_proxy …; sso okta }` does. A feeder leaves the
// Routes of an invoke that its named route runs again (a cycle) empty.
type Handler struct {
	Module string
	Routes []Route
	Name   string
	// Transport is a reverse_proxy's transport module ("fastcgi" for
	// php_fastcgi), "" for http.
	Transport string
	// Errors are a subroute's error routes, which run after the
	// matchers of the routes that hold it (Guards reads them).
	Errors []Route
	// Value is the feeder's own handler (the provisioned module, or its
	// adapted JSON), for the caller to find it among the Guards.
	Value any
	// PassesOn: configured to call the next handler for some requests
	// (file_server's pass_thru; a reverse_proxy handle_response whose
	// routes can end without answering, CallsNext, as forward_auth's),
	// so that a terminal module does not end the chain.
	PassesOn bool
}

// Finding is an sso handler that no request reaches.
type Finding struct {
	// Server names the Caddy server; set by the caller that knows it.
	Server string
	// Terminal is the module that answers first, At where it is, and SSO
	// where the sso handler is, as paths in the server's adapted JSON
	// (routes[0].handle[0].routes[1].handle[0]).
	Terminal, At, SSO string
}

// String says what is wrong and the fix, for the check's report and the
// log at start alike.
func (f Finding) String() string {
	var b strings.Builder
	if f.Server != "" {
		fmt.Fprintf(&b, "server %s: ", f.Server)
	}
	fmt.Fprintf(&b, "the sso handler at %s never runs: %s at %s (Caddyfile: %s) answers every request that gets that far, so the app is served without sign-in; put sso before it: first in the route block (outside a route block, the Caddyfile's directive order runs sso first)",
		f.SSO, f.Terminal, f.At, directive(f.Terminal))
	return b.String()
}

// directive is the Caddyfile directive that adapts to a terminal module,
// or "" when the module answers no request by itself (it calls the next
// handler). These are the one list of terminal handlers.
func directive(module string) string {
	switch module {
	case "reverse_proxy":
		return "reverse_proxy or php_fastcgi"
	case "static_response":
		return "respond or redir"
	case "file_server", "sso_scim", "metrics", "copy_response": // not acme_server: it passes on paths outside its prefix
		return module
	}
	return ""
}

// spot is where a terminal handler is, and which.
type spot struct {
	module, at string
	h          Handler
}

// Invoked is the named route an invoke of name runs in its place, with the
// names being expanded once it is (invoking and name); nil when the server
// has no route of that name or it is among invoking: a named route that
// invokes itself, directly or not, is expanded once, so that the walks over
// the tree (the feeders of Route, ErrorRoutes) end.
func Invoked[R any](named map[string]*R, invoking []string, name string) (*R, []string) {
	if nr := named[name]; nr != nil && !slices.Contains(invoking, name) {
		return nr, append(slices.Clip(invoking), name)
	}
	return nil, invoking
}

// FastCGI is the transport of php_fastcgi's reverse_proxy.
const FastCGI = "fastcgi"

// Forwards reports whether routes can send a request to another server: a
// reverse_proxy of any transport, in them or in a subroute or named route
// they run. An error route that forwards would hand the request the
// gateway refused (and the callback's code, its cookies) to that server,
// the app as often as not, so the gateway writes its own pages instead of
// handing them to such an error route.
func Forwards(routes []Route) bool {
	for _, r := range routes {
		for _, h := range r.Handlers {
			if h.Module == "reverse_proxy" || Forwards(h.Routes) {
				return true
			}
		}
	}
	return false
}

// Unprotected returns the sso handlers of routes (one server's) that a
// terminal handler before them keeps from running: one earlier in the same
// route, whatever its matchers, or one in an earlier route of the same
// list that has no matcher (a subroute counts as terminal when one of its
// own unmatched routes is). php_fastcgi's reverse_proxy ends its list
// although its route is matched (path *.php): the try_files rewrite before
// it sends every request for a file that does not exist to index.php, so
// the PHP app answers them all.
func Unprotected(routes []Route) []Finding {
	return Preceded(routes, Serves, func(Handler) bool { return true })
}

// Preceded returns the sso handlers of routes that target picks and that a
// handler first picks runs before, by Unprotected's rule (Unprotected is
// Preceded by Serves): `caddy sso check` reads it with an intercept whose
// handle_response can rewrite a verify-mode sso's 401 into a 2xx.
func Preceded(routes []Route, first, target func(Handler) bool) []Finding {
	var out []Finding
	walk(routes, top, "", nil, first, target, &out)
	return out
}

// CallsNext reports whether routes, a reverse_proxy handle_response's, can
// end without answering, so that the request goes on to the handler after
// the proxy: forward_auth's handler for a 2xx copies headers and does. One
// that only replaces error pages answers, and the proxy answers the rest.
func CallsNext(routes []Route) bool {
	var ignored []Finding
	return walk(routes, top, "", nil, Serves, nil, &ignored) == nil
}

// Answers reports whether routes answer every request that reaches them
// by a handler that answers, by answers's judgement, every request it
// gets: a route without matchers holds one, directly or in a route without
// matchers of a subroute (or named route) it holds. Else some request runs
// out of handlers with nothing written, and Caddy answers it with an empty
// 200: a site of `respond /health 403` (an unmatched route whose
// subroute's one route is matched) or of `header X-A b` alone answers
// nothing for /other.
func Answers(routes []Route, answers func(Handler) bool) bool {
	_, ok := Answering(routes, answers)
	return ok
}

// Answering is the handler Answers finds: the first, in the order Caddy
// runs them, that answers every request reaching routes (ok false when
// none does), for a caller that judges what it answers.
func Answering(routes []Route, answers func(Handler) bool) (h Handler, ok bool) {
	var ignored []Finding
	if s := walk(routes, top, "", nil, answers, nil, &ignored); s != nil {
		return s.h, true
	}
	return Handler{}, false
}

// EveryPath reports whether a path matcher's paths match every request
// ("*", "/*": the site address http://:9091/*): a matcher set of it alone
// is no condition (Route.Matched).
func EveryPath(paths []string) bool {
	return slices.ContainsFunc(paths, func(p string) bool { return p == "*" || p == "/*" })
}

// Serves reports whether h answers every request it gets with the
// response of a terminal module (directive), unless it is configured to
// pass some on.
func Serves(h Handler) bool { return directive(h.Module) != "" && !h.PassesOn }

// top is the JSON path of a server's route i.
func top(i int) string { return fmt.Sprintf("routes[%d]", i) }

// walk checks one route list, whose route i is at path(i) in the adapted
// JSON (via: how a named route's list is reached, appended to every place
// it reports); before is the terminal handler that answers before the list
// is entered (nil: none); terminal says which handlers answer every
// request they get (Serves, for Unprotected), and target which sso
// handlers after one are reported (nil: none). It returns the terminal
// handler that answers every request reaching the list, if any.
func walk(routes []Route, path func(int) string, via string, before *spot, terminal, target func(Handler) bool, out *[]Finding) *spot {
	list := before
	for i, r := range routes {
		here, ends := list, !r.Matched
		for j, h := range r.Handlers {
			loc := fmt.Sprintf("%s.handle[%d]", path(i), j)
			var t *spot
			switch h.Module {
			case SSO:
				if here != nil && target != nil && target(h) {
					*out = append(*out, Finding{Terminal: here.module, At: here.at, SSO: loc + via})
				}
			case "subroute":
				t = walk(h.Routes, func(k int) string { return fmt.Sprintf("%s.routes[%d]", loc, k) }, via, here, terminal, target, out)
			case "invoke":
				t = walk(h.Routes, func(int) string { return "named_routes." + h.Name },
					fmt.Sprintf(" (the named route %s, which invoke %s at %s runs)", h.Name, h.Name, loc+via), here, terminal, target, out)
			}
			if here == nil && terminal(h) {
				here = &spot{module: h.Module, at: loc + via, h: h}
				ends = ends || h.Transport == FastCGI
			}
			if here == nil {
				here = t
			}
		}
		if ends && list == nil {
			list = here
		}
	}
	return list
}
