package routeorder

import (
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Outcome is what a server's error routes (handle_errors) do with an
// error Caddy hands them.
type Outcome int

const (
	// Unanswered means no error route runs a handler for it, and Caddy sends
	// its status with an empty body.
	Unanswered Outcome = iota
	// Answered means error routes answer it without forwarding the request.
	Answered
	// Forwarded means an error route that can forward the request to another
	// server (Forwards) runs for it: the gateway answers such an error
	// itself, or the app would get the request the gateway refused.
	Forwarded
)

// ErrorRoutes tells what the error routes of the servers a handler runs
// in do with its errors. The routes' tree, and which of them forward, is
// read once per server (a config's servers do not change; a reload makes
// new handlers); their matchers are evaluated per error, as Caddy does.
// The zero value is ready; do not copy it after use.
type ErrorRoutes struct {
	servers sync.Map // *caddyhttp.Server → []errorRoute
}

// errorRoute is a provisioned route as an error route runs, with what
// does not change per request worked out: whether it can forward, and
// its handlers.
type errorRoute struct {
	route    *caddyhttp.Route // its matchers, Group and Terminal
	forwards bool             // Forwards: whatever the matchers inside it
	handlers []errorHandler
}

// errorHandler is one handler of an error route: ends when it answers
// (a terminal module, directive), or, for a subroute or an invoke
// (nests), the routes it runs before the route's next handler.
type errorHandler struct {
	ends, nests bool
	routes      []errorRoute
}

// Outcome is what the error routes of r's server do with err (what the
// handler returns to Caddy), r being the request the handler got.
func (e *ErrorRoutes) Outcome(r *http.Request, err error) Outcome {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if _, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); srv == nil || srv.Errors == nil || !ok {
		return Unanswered
	}
	tree, ok := e.servers.Load(srv)
	if !ok {
		tree, _ = e.servers.LoadOrStore(srv, errorTree(srv.Errors.Routes, srv.NamedRoutes))
	}
	var ran bool
	if o, done := runErrors(tree.([]errorRoute), srv.Errors.WithError(r, err), map[string]bool{}, &ran); done {
		return o
	}
	return ended(ran)
}

// errorTree is routes as error routes, named the server's named routes.
func errorTree(routes caddyhttp.RouteList, named map[string]*caddyhttp.Route) []errorRoute {
	return errorRoutes(routes, fromRoutes(routes, named, nil), named, nil)
}

// errorRoutes pairs provisioned routes with abstract, their tree
// (fromRoutes), read once for the whole tree: a subroute's or an
// invoke's routes are its handler's there. invoking are the named routes
// being expanded, as fromRoutes had them (an invoke of one of them, a
// cycle, runs nothing here).
func errorRoutes(routes caddyhttp.RouteList, abstract []Route, named map[string]*caddyhttp.Route, invoking []string) []errorRoute {
	out := make([]errorRoute, len(routes))
	for i := range routes {
		out[i] = errorRoute{route: &routes[i], forwards: Forwards(abstract[i : i+1]), handlers: make([]errorHandler, len(routes[i].Handlers))}
		for j, mh := range routes[i].Handlers {
			h := abstract[i].Handlers[j]
			eh := errorHandler{ends: directive(h.Module) != "" && !h.PassesOn}
			switch m := mh.(type) {
			case *caddyhttp.Subroute:
				eh.nests, eh.routes = true, errorRoutes(m.Routes, h.Routes, named, invoking)
			case *caddyhttp.Invoke:
				eh.nests = true
				if nr, in := Invoked(named, invoking, m.Name); nr != nil {
					eh.routes = errorRoutes(caddyhttp.RouteList{*nr}, h.Routes, named, in)
				}
			}
			out[i].handlers[j] = eh
		}
	}
	return out
}

// runErrors follows routes as Caddy's compiled chain runs them
// (RouteList.Compile): each route whose matchers accept r, but for one of
// a group whose first match ran, runs its handlers in order, a subroute's
// or invoke's routes before the route's next handler, and the chain goes
// on to the next route until a terminal handler answers or a terminal
// route ends it. ran says whether a handler has run so far; done whether
// the chain ended, with the outcome.
func runErrors(routes []errorRoute, r *http.Request, groups map[string]bool, ran *bool) (o Outcome, done bool) {
	for _, rt := range routes {
		if g := rt.route.Group; g != "" && groups[g] {
			continue
		}
		match, err := rt.route.MatcherSets.AnyMatchWithError(r)
		if err != nil {
			return ended(*ran), true // Caddy ends the error chain with the matcher's error
		} else if !match {
			continue
		}
		if rt.route.Group != "" {
			groups[rt.route.Group] = true
		}
		if rt.forwards {
			return Forwarded, true
		}
		for _, h := range rt.handlers {
			if h.nests {
				if o, done := runErrors(h.routes, r, groups, ran); done {
					return o, true
				}
				continue
			}
			*ran = true
			if h.ends {
				return Answered, true
			}
		}
		if rt.route.Terminal {
			return ended(*ran), true
		}
	}
	return Unanswered, false
}

// ended is the outcome of a chain that ends without a terminal handler:
// Caddy sends the status with an empty body, after what the handlers that
// ran (a header, a plugin's answer) did.
func ended(ran bool) Outcome {
	if ran {
		return Answered
	}
	return Unanswered
}
