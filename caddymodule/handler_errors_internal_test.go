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
	"go.uber.org/zap"

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
				w, err := serveOnServer(t, h, r, srv)
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

// TestVerifyNotRunningAnswersItself: a forward-auth request that arrives
// before the sso app runs is answered 503 by the gateway, never by the
// server's error routes, whose own status (a respond, or an upstream's
// 200) would tell the proxy to let the request through. A browser's
// request for an endpoint on the same route is a page request, and goes
// to the error routes as on any route.
func TestVerifyNotRunningAnswersItself(t *testing.T) {
	notRunning := &App{live: gateway.NewLive()}
	notRunning.live.Started() // its Start failed: nothing runs
	plan, err := gateway.NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	corp := &gateway.IdP{Name: "corp", Protocol: "oidc"}
	errorRoute := &caddyhttp.StaticResponse{StatusCode: caddyhttp.WeakString("200"), Body: "sorry"}
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{errorRoute}}}}}
	for _, tc := range []struct {
		mode       string
		path       string
		caddyError bool
	}{
		{gateway.ModeForwardAuth, "/verify", false},
		{gateway.ModeAuthRequest, "/verify", false},
		{gateway.ModeForwardAuth, "/.sso/oidc/corp/callback", true},
	} {
		t.Run(tc.mode+" "+tc.path, func(t *testing.T) {
			h := &Handler{PathPrefix: DefaultPathPrefix, app: notRunning, logger: zap.NewNop(),
				route: &gateway.Route{PathPrefix: DefaultPathPrefix, IdPs: []*gateway.IdP{corp}, Default: corp,
					Headers: plan, Logger: zap.NewNop(), Mode: tc.mode}}
			w, err := serveOnServer(t, h, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+tc.path, nil), srv)
			var he caddyhttp.HandlerError
			switch {
			case tc.caddyError && (!errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable):
				t.Errorf("ServeHTTP returned %v, wrote %d; want a 503 Caddy error for the error routes", err, w.Code)
			case !tc.caddyError && err != nil:
				t.Errorf("ServeHTTP handed %v to the server's error routes; want the 503 answered", err)
			case !tc.caddyError && (w.Code != http.StatusServiceUnavailable || w.Header().Get("Cache-Control") != "no-store"):
				t.Errorf("answer %d, Cache-Control %q; want 503, no-store", w.Code, w.Header().Get("Cache-Control"))
			}
		})
	}
}

// serveOnServer is h serving r as Caddy's server srv runs it (its
// replacer, and srv for the error routes), with no upstream to call.
func serveOnServer(t *testing.T, h *Handler, r *http.Request, srv *caddyhttp.Server) (*httptest.ResponseRecorder, error) {
	t.Helper()
	r = r.WithContext(context.WithValue(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()), caddyhttp.ServerCtxKey, srv))
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("the request reached the upstream")
		return nil
	}))
	return w, err
}
