package routeorder

import (
	"maps"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// FromApp checks the servers of a provisioned http app (what
// caddy.Context.App("http") returns; anything else yields nothing).
// Provisioning clears the raw JSON, so the tree is read from the loaded
// modules: matcher sets, handlers by module name, subroutes, the named
// routes invoke runs.
func FromApp(app any) []Finding {
	h, _ := app.(*caddyhttp.App)
	if h == nil {
		return nil
	}
	names := make([]string, 0, len(h.Servers))
	for n := range h.Servers {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []Finding
	for _, n := range names {
		srv := h.Servers[n]
		for _, f := range Unprotected(fromRoutes(srv.Routes, srv.NamedRoutes, nil)) {
			f.Server = n
			out = append(out, f)
		}
	}
	return out
}

// AtStart is what the sso app logs at start (ERROR) of a provisioned http
// app: the sso handlers that never run (FromApp), and those whose
// endpoints Caddy's routes send elsewhere (MisroutedFromApp).
func AtStart(app any) []string {
	var out []string
	for _, f := range FromApp(app) {
		out = append(out, f.String())
	}
	for _, m := range MisroutedFromApp(app) {
		out = append(out, m.String())
	}
	return out
}

// MisroutedFromApp is Misrouted for the servers of a provisioned http app
// (as FromApp reads it), the sso handlers described by themselves: a
// Value with an EndpointPaths method (caddymodule.Handler's, which the
// gateway route it serves answers by).
func MisroutedFromApp(app any) []Misroute {
	h, _ := app.(*caddyhttp.App)
	if h == nil {
		return nil
	}
	describe := func(h Handler) (string, map[string][]string) {
		if d, ok := h.Value.(interface {
			EndpointPaths() (string, map[string][]string)
		}); ok {
			return d.EndpointPaths()
		}
		return "", nil
	}
	var out []Misroute
	for _, n := range slices.Sorted(maps.Keys(h.Servers)) {
		srv := h.Servers[n]
		for _, m := range Misrouted(fromRoutes(srv.Routes, srv.NamedRoutes, nil), describe) {
			m.Server = n
			out = append(out, m)
		}
	}
	return out
}

// fromRoutes is the abstract tree of provisioned routes; named are the
// server's named routes, and invoking those that the routes are part of
// (a cycle) is left unexpanded.
func fromRoutes(routes caddyhttp.RouteList, named map[string]*caddyhttp.Route, invoking []string) []Route {
	out := make([]Route, len(routes))
	for i, r := range routes {
		out[i].Matched = len(r.MatcherSets) > 0 && !slices.ContainsFunc(r.MatcherSets, everyRequest)
		out[i].Hosts = hostSets(r.MatcherSets)
		out[i].Match, out[i].Group, out[i].Terminal = pathHost(r.MatcherSets), r.Group, r.Terminal
		for _, mh := range r.Handlers {
			h := Handler{Module: caddy.GetModuleName(mh), Value: mh}
			switch m := mh.(type) {
			case *caddyhttp.Subroute:
				h.Routes = fromRoutes(m.Routes, named, invoking)
				if m.Errors != nil {
					h.Errors = fromRoutes(m.Errors.Routes, named, invoking)
				}
			case *caddyhttp.Invoke:
				h.Name = m.Name
				if nr, in := Invoked(named, invoking, m.Name); nr != nil {
					h.Routes = fromRoutes(caddyhttp.RouteList{*nr}, named, in)
				}
			case *fileserver.FileServer:
				h.PassesOn = m.PassThru
			case *reverseproxy.Handler:
				if m.Transport != nil {
					h.Transport = caddy.GetModuleName(m.Transport)
				}
				for _, hr := range m.HandleResponse {
					h.PassesOn = h.PassesOn || CallsNext(fromRoutes(hr.Routes, named, invoking))
				}
			}
			out[i].Handlers = append(out[i].Handlers, h)
		}
	}
	return out
}

// everyRequest reports whether a provisioned matcher set matches every
// request: it holds only path matchers of EveryPath.
func everyRequest(set caddyhttp.MatcherSet) bool {
	for _, m := range set {
		var paths []string
		switch m := m.(type) {
		case *caddyhttp.MatchPath:
			paths = *m
		case caddyhttp.MatchPath:
			paths = m
		}
		if !EveryPath(paths) {
			return false
		}
	}
	return true
}

// hostSets is Route.Hosts of provisioned matcher sets: their host
// matchers' hosts, as Caddy provisioned them (A-labels, lower case).
func hostSets(sets caddyhttp.MatcherSets) [][]string {
	out := make([][]string, len(sets))
	for i, set := range sets {
		for _, m := range set {
			switch m := m.(type) {
			case *caddyhttp.MatchHost:
				out[i] = *m
			case caddyhttp.MatchHost:
				out[i] = m
			}
		}
	}
	return out
}

// ServerGuard is what guards target, an sso handler, in srv (Guards): it
// is looked for in the server's routes, then in its error routes. ok is
// false when target is in neither (nested in a module other than
// subroute and invoke): nothing then vouches for its requests' Host.
func ServerGuard(srv *caddyhttp.Server, target caddyhttp.MiddlewareHandler) (g Guard, ok bool) {
	lists := []caddyhttp.RouteList{srv.Routes}
	if srv.Errors != nil {
		lists = append(lists, srv.Errors.Routes)
	}
	for _, routes := range lists {
		for _, g := range Guards(fromRoutes(routes, srv.NamedRoutes, nil)) {
			if g.Handler.Value == any(target) {
				return g, true
			}
		}
	}
	return Guard{}, false
}
