package routeorder

import "slices"

// Guard is an sso handler and what Caddy's routing guarantees about the
// Host of the requests that reach it: whether a URL may be built on that
// Host (docs/security.md, "Host-derived URLs").
type Guard struct {
	Handler Handler
	// Hosts has, outermost first, for each route on the way to the
	// handler that Caddy enters only on a host match (every matcher set
	// of it has a host matcher), the hosts those matchers accept. A route
	// with a matcher set without one lets any Host in, and adds nothing.
	// Empty: any Host reaches the handler, so nothing vouches for it, and
	// the site needs base_url.
	Hosts [][]string
	// Named is the named route holding the handler, when an invoke runs
	// it ("" when the handler is in the routes themselves). Hosts is then
	// empty, whatever the invoking routes match: Caddy runs a named route
	// for every invoke of it, also ones in places this tree does not hold
	// (a reverse_proxy's handle_response, another module's routes), and
	// does not tell the handler which invoke ran it.
	Named string
}

// Guards returns the sso handlers of routes (a server's routes, or its
// error routes) in order, each with what guards it. This is the one rule
// for it: the gateway vouches for a request's Host by it, and `caddy sso
// check` lists the sites whose values to register by it.
func Guards(routes []Route) []Guard {
	var out []Guard
	guards(routes, nil, "", &out)
	return out
}

// guards adds the sso handlers of routes to out; hosts are the guards of
// the routes that hold them, named the named route they are in.
func guards(routes []Route, hosts [][]string, named string, out *[]Guard) {
	for _, r := range routes {
		in := hosts
		if own := r.guard(); own != nil && named == "" {
			in = append(slices.Clip(hosts), own)
		}
		for _, h := range r.Handlers {
			switch h.Module {
			case SSO:
				*out = append(*out, Guard{Handler: h, Hosts: in, Named: named})
			case "subroute":
				guards(h.Routes, in, named, out)
				guards(h.Errors, in, named, out)
			case "invoke":
				guards(h.Routes, nil, h.Name, out)
			}
		}
	}
}

// guard is the hosts r lets in when every matcher set of it has a host
// matcher, the hosts of all of them (a request passes one set), else nil.
func (r Route) guard() []string {
	if len(r.Hosts) == 0 {
		return nil
	}
	var out []string
	for _, set := range r.Hosts {
		if len(set) == 0 {
			return nil
		}
		out = append(out, set...)
	}
	return out
}
