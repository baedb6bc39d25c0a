package routeorder

import (
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestFromAppSelfInvokingNamedRoute: Caddy loads a named route that
// invokes itself; reading it for the start-time check must end (the cycle guard; without it the walk never returns).
func TestFromAppSelfInvokingNamedRoute(t *testing.T) {
	self := &caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Invoke{Name: "app"}}}
	app := &caddyhttp.App{Servers: map[string]*caddyhttp.Server{"srv0": {
		Routes:      caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Invoke{Name: "app"}}}},
		NamedRoutes: map[string]*caddyhttp.Route{"app": self},
	}}}
	if f := FromApp(app); len(f) != 0 {
		t.Errorf("findings %v, want none", f)
	}
}
