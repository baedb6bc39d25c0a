package caddymodule

import (
	"net/http"
	"slices"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/routeorder"
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
	o.Vouched, o.Named = h.hosts.vouch(r, h, o.Site.Host, forwarded)
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
// requests that reach one handler (routeorder.Guards, the rule `caddy sso
// check` lists sites by). A handler cannot see its own route at
// Provision (Caddy provisions a route's handlers before it keeps them),
// so it is found once, at the first request, in the server's provisioned
// routes.
type routeHosts struct {
	once sync.Once
	// hosts has, for each route on the way from the server to the handler
	// that Caddy enters only when a host matcher accepts the request, a
	// matcher of the hosts it lets in. Empty: any Host reaches the handler.
	hosts []caddyhttp.MatchHost
	// named is the named route the handler is in (routeorder.Guard.Named),
	// which is why nothing vouches for the Host.
	named string
}

// vouch reports whether host may be trusted: Caddy routed the request
// here because a host matcher accepted its Host, and a host taken from a
// trusted proxy's X-Forwarded-Host (forwarded) passes the same matchers.
// named is the named route the handler is in ("" when it is not).
func (rh *routeHosts) vouch(r *http.Request, h *Handler, host string, forwarded bool) (ok bool, named string) {
	rh.once.Do(func() { rh.hosts, rh.named = routeHostMatchers(r, h) })
	if len(rh.hosts) == 0 {
		return false, rh.named
	}
	if !forwarded {
		return true, ""
	}
	probe := *r
	probe.Host = host
	for _, m := range rh.hosts {
		if !m.Match(&probe) {
			return false, ""
		}
	}
	return true, ""
}

// routeHostMatchers finds target in the routes of the server r arrived
// on and returns a host matcher for each route that guards it, and the
// named route it is in (routeorder.ServerGuard).
func routeHostMatchers(r *http.Request, target caddyhttp.MiddlewareHandler) ([]caddyhttp.MatchHost, string) {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil {
		return nil, ""
	}
	g, _ := routeorder.ServerGuard(srv, target)
	out := make([]caddyhttp.MatchHost, 0, len(g.Hosts))
	for _, hosts := range g.Hosts {
		// Provisioned hosts, one route's sets together: sorted and without
		// repeats, as Provision wants them for its binary search.
		m := caddyhttp.MatchHost(slices.Compact(slices.Sorted(slices.Values(hosts))))
		if m.Provision(caddy.Context{}) != nil {
			return nil, g.Named
		}
		out = append(out, m)
	}
	return out, g.Named
}
