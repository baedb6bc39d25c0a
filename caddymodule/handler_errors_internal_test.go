package caddymodule

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestErrorsNotForwardedStatuses: the gateway errors without a page that
// a real Caddy cannot easily be made to raise (routeorder_errors_e2e_test
// has the others) obey the same rule: the 503 of an sso app that is not
// running, on a protected path, and the 425 of an endpoint's POST in TLS
// early data are answered by the gateway with their status when the
// server's error route forwards, and handed to an error route that
// answers itself.
func TestErrorsNotForwardedStatuses(t *testing.T) {
	g := newStoreGoingAway(t)
	notRunning := &App{live: gateway.NewLive()}
	notRunning.live.Started() // its Start failed: nothing runs
	errorRoute := func(h caddyhttp.MiddlewareHandler) *caddyhttp.Server {
		return &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{h}}}}}
	}
	for _, tc := range []struct {
		name         string
		app          *App
		method, path string
		early        bool
		status       int
	}{
		{"the sso app is not running", notRunning, http.MethodGet, "/private", false, http.StatusServiceUnavailable},
		{"a sign-out in TLS early data", g.h.app, http.MethodPost, "/.sso/logout", true, http.StatusTooEarly},
	} {
		for _, forwards := range []bool{true, false} {
			srv, name := errorRoute(new(caddyhttp.StaticResponse)), tc.name+", the error route responds"
			if forwards {
				srv, name = errorRoute(new(reverseproxy.Handler)), tc.name+", the error route proxies"
			}
			t.Run(name, func(t *testing.T) {
				h := &Handler{PathPrefix: DefaultPathPrefix, app: tc.app, logger: g.h.logger, route: g.h.route}
				r := httptest.NewRequest(tc.method, "http://127.0.0.1"+tc.path, nil)
				if tc.early {
					r.TLS = &tls.ConnectionState{HandshakeComplete: false}
				}
				r = r.WithContext(context.WithValue(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()), caddyhttp.ServerCtxKey, srv))
				w := httptest.NewRecorder()
				err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
					t.Error("the request reached the upstream")
					return nil
				}))
				var he caddyhttp.HandlerError
				switch {
				case forwards && (err != nil || w.Code != tc.status):
					t.Errorf("ServeHTTP returned %v, wrote %d; want %d written and no error for the error routes", err, w.Code, tc.status)
				case !forwards && (!errors.As(err, &he) || he.StatusCode != tc.status || w.Body.Len() > 0):
					t.Errorf("ServeHTTP returned %v, wrote %d %q; want a %d Caddy error", err, w.Code, w.Body, tc.status)
				}
			})
		}
	}
}
