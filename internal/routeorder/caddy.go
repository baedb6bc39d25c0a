package routeorder

import (
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

// fromRoutes is the abstract tree of provisioned routes; named are the
// server's named routes, and invoking those that the routes are part of
// (a cycle) is left unexpanded.
func fromRoutes(routes caddyhttp.RouteList, named map[string]*caddyhttp.Route, invoking []string) []Route {
	out := make([]Route, len(routes))
	for i, r := range routes {
		out[i].Matched = len(r.MatcherSets) > 0
		for _, mh := range r.Handlers {
			h := Handler{Module: caddy.GetModuleName(mh)}
			switch m := mh.(type) {
			case *caddyhttp.Subroute:
				h.Routes = fromRoutes(m.Routes, named, invoking)
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
