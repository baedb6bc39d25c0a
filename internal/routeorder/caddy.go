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
// modules: matcher sets, handlers by module name, subroutes.
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
		for _, f := range Unprotected(fromRoutes(h.Servers[n].Routes)) {
			f.Server = n
			out = append(out, f)
		}
	}
	return out
}

// fromRoutes is the abstract tree of provisioned routes.
func fromRoutes(routes caddyhttp.RouteList) []Route {
	out := make([]Route, len(routes))
	for i, r := range routes {
		out[i].Matched = len(r.MatcherSets) > 0
		for _, mh := range r.Handlers {
			h := Handler{Module: caddy.GetModuleName(mh)}
			switch m := mh.(type) {
			case *caddyhttp.Subroute:
				h.Routes = fromRoutes(m.Routes)
			case *fileserver.FileServer:
				h.PassesOn = m.PassThru
			case *reverseproxy.Handler:
				for _, hr := range m.HandleResponse {
					h.PassesOn = h.PassesOn || CallsNext(fromRoutes(hr.Routes))
				}
			}
			out[i].Handlers = append(out[i].Handlers, h)
		}
	}
	return out
}
