package caddymodule

import (
	"net/http"
	"slices"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// origin is the site's configured base_url; without one, the origin the
// request names (gateway.RequestOrigin: X-Forwarded-Proto and -Host only
// when Caddy's trusted_proxies vouch for the peer), vouched for when this
// route's host matchers accept its host. It is the one place the gateway
// decides this: the gateway gets it as a parameter, the flow cookies from
// the request context (answering, idp.WithOrigin).
func (h *Handler) origin(r *http.Request) gateway.Origin {
	if h.base != nil {
		return *h.base
	}
	o, forwarded := gateway.RequestOrigin(r, trustedProxy(r))
	o.Vouched = h.hosts.vouch(r, h, o.Site.Host, forwarded)
	if o.Site.Scheme == "http" && o.Secure() {
		h.insecureWarn.Do(func() {
			h.logger.Warn("site is served over plain http; session cookies keep the Secure attribute, so browsers will only send them over https (terminate TLS in front of Caddy, and list that proxy in trusted_proxies)",
				zap.String("host", o.Site.Host))
		})
	}
	return o
}

// trustedProxy reports whether Caddy's trusted_proxies vouch for the peer.
func trustedProxy(r *http.Request) bool {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}

// routeHosts is what Caddy's routing guarantees about the Host of the
// requests that reach one handler. A handler cannot see its own route at
// Provision (Caddy provisions a route's handlers before it keeps them), so
// it is found once, at the first request, in the server's provisioned
// routes.
type routeHosts struct {
	once sync.Once
	// sets has, for each route on the way from the server to the handler
	// that Caddy enters only when a host matcher accepts the request, the
	// host matcher of each of its matcher sets. Empty: any Host reaches
	// the handler.
	sets [][]caddyhttp.MatchHost
}

// vouch reports whether host may be trusted: Caddy routed the request
// here because a host matcher accepted its Host, and a host taken from a
// trusted proxy's X-Forwarded-Host (forwarded) passes the same matchers.
func (rh *routeHosts) vouch(r *http.Request, h *Handler, host string, forwarded bool) bool {
	rh.once.Do(func() { rh.sets = routeHostMatchers(r, h) })
	if len(rh.sets) == 0 {
		return false
	}
	if !forwarded {
		return true
	}
	probe := *r
	probe.Host = host
	for _, set := range rh.sets {
		if !slices.ContainsFunc(set, func(m caddyhttp.MatchHost) bool { return m.Match(&probe) }) {
			return false
		}
	}
	return true
}

// routeHostMatchers finds target in the routes of the server r arrived
// on and returns the host matchers that guard it (see routeHosts.sets).
// A handler reached another way (a named route Caddy's invoke runs, or a
// handler module other than subroute that nests routes) counts as
// unguarded: its site then needs base_url.
func routeHostMatchers(r *http.Request, target caddyhttp.MiddlewareHandler) [][]caddyhttp.MatchHost {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil {
		return nil
	}
	if sets, ok := routesTo(srv.Routes, target); ok {
		return sets
	}
	if srv.Errors != nil {
		if sets, ok := routesTo(srv.Errors.Routes, target); ok {
			return sets
		}
	}
	return nil
}

// routesTo looks for target in routes and the subroutes they hold, and
// returns the host matchers of the host-guarded routes on the way.
func routesTo(routes caddyhttp.RouteList, target caddyhttp.MiddlewareHandler) ([][]caddyhttp.MatchHost, bool) {
	for _, rt := range routes {
		for _, mh := range rt.Handlers {
			var inner [][]caddyhttp.MatchHost
			found := mh == target
			if sub, ok := mh.(*caddyhttp.Subroute); ok && !found {
				if inner, found = routesTo(sub.Routes, target); !found && sub.Errors != nil {
					inner, found = routesTo(sub.Errors.Routes, target)
				}
			}
			if found {
				if hosts := hostMatchers(rt.MatcherSets); hosts != nil {
					inner = append(inner, hosts)
				}
				return inner, true
			}
		}
	}
	return nil, false
}

// hostMatchers returns a host matcher of each matcher set when every set
// has one (so Caddy enters the route only on a host match), else nil.
func hostMatchers(sets caddyhttp.MatcherSets) []caddyhttp.MatchHost {
	if len(sets) == 0 {
		return nil
	}
	out := make([]caddyhttp.MatchHost, 0, len(sets))
	for _, set := range sets {
		var host caddyhttp.MatchHost
		for _, m := range set {
			switch m := m.(type) {
			case *caddyhttp.MatchHost:
				host = *m
			case caddyhttp.MatchHost:
				host = m
			}
		}
		if len(host) == 0 {
			return nil
		}
		out = append(out, host)
	}
	return out
}
