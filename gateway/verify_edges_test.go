package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
)

// verifyRoute is a route answering forward-auth requests in mode, with
// one OIDC IdP (corp, the default) and no identity headers renamed,
// logging to the returned observer.
func verifyRoute(t *testing.T, mode string) (*Route, *observer.ObservedLogs) {
	t.Helper()
	plan, err := NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	rt := &Route{PathPrefix: "/.sso/", Mode: mode, Logger: zap.New(core), Headers: plan,
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	rt.Default = rt.IdPs[0]
	return rt, logs
}

// TestVerifyReturnToFromTheProxy: where the 401's login URL comes back
// to. docs/forward-auth.md says that when both descriptions of the
// original request arrive, the X-Forwarded-* pair wins, and that
// X-Original-Method alone is read too (Authelia-style nginx
// configurations): a form posted behind such a proxy signs in back to its
// page (the Referer), not to a GET of the URL it posted to, and so does a
// script's request, as through the sso directive (signInFrom); a
// navigation comes back to the page it asked for. An original
// URI off the site, or a callback carrying an IdP's answer (which would
// replay it), comes back to the home page instead.
func TestVerifyReturnToFromTheProxy(t *testing.T) {
	world := newDutyWorld(t)
	form := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
		"Referer": "https://app.example.com/edit"}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    string // return_to
	}{
		{"X-Forwarded-Uri over X-Original-Uri", map[string]string{"X-Forwarded-Uri": "/proxy", "X-Original-Uri": "/client"}, "/proxy"},
		{"X-Forwarded-Method over X-Original-Method", map[string]string{"X-Forwarded-Method": "GET", "X-Original-Method": "POST",
			"X-Forwarded-Uri": "/save"}, "/save"},
		{"X-Original-Method alone", map[string]string{"X-Original-Method": "POST", "X-Original-Uri": "/save"}, "/edit"},
		{"a Referer on the site in another spelling", map[string]string{"X-Original-Method": "POST", "X-Original-Uri": "/save",
			"Referer": "https://APP.Example.com:443/edit"}, "/edit"},
		{"a Referer on another site", map[string]string{"X-Original-Method": "POST", "X-Original-Uri": "/save",
			"Referer": "https://app.example.com.evil.example/edit"}, "/save"},
		{"a script's fetch, from the page in its Referer", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/api/save",
			"Accept": "application/json", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}, "/edit"},
		{"a script's GET, from the page in its Referer", map[string]string{"X-Forwarded-Uri": "/api/items",
			"Accept": "application/json", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}, "/edit"},
		{"a script's fetch without a Referer on the site", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/api/save",
			"Accept": "application/json", "Sec-Fetch-Mode": "cors", "Referer": "https://evil.example/edit"}, "/api/save"},
		{"a navigation from a page of the site", map[string]string{"X-Forwarded-Uri": "/reports"}, "/reports"},
		{"off-site URI", map[string]string{"X-Forwarded-Uri": "//evil.example/x"}, "/"},
		{"a callback with the IdP's answer", map[string]string{"X-Forwarded-Uri": "/.sso/oidc/corp/callback?state=s&code=c"}, "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, _ := verifyRoute(t, ModeAuthRequest)
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
			for _, h := range []map[string]string{form, tc.headers} {
				for k, v := range h {
					r.Header.Set(k, v)
				}
			}
			w := httptest.NewRecorder()
			if err := rt.Verify(w, r, world.run, dutyOrigin(), nil, true); err != nil {
				t.Fatal(err)
			}
			loc, err := url.Parse(w.Header().Get("Location"))
			if err != nil || w.Code != http.StatusUnauthorized || loc.Query().Get("return_to") != tc.want {
				t.Errorf("answer %d, Location %q, want 401 with return_to=%s", w.Code, w.Header().Get("Location"), tc.want)
			}
		})
	}
}

// TestVerifyUntrustedWarningOnce: the WARN that tells an operator to list
// the proxy in trusted_proxies is written for a request that describes its
// original request from a peer that is not trusted, once per route, and
// never for a trusted proxy (a correct setup must not log a false alarm)
// nor for a request that describes nothing.
func TestVerifyUntrustedWarningOnce(t *testing.T) {
	world := newDutyWorld(t)
	const msg = "forward-auth request describes its original request"
	for _, tc := range []struct {
		name     string
		trusted  bool
		describe bool
		warnings int // after two such requests
	}{
		{"trusted proxy", true, true, 0},
		{"untrusted peer, describing", false, true, 1},
		{"untrusted peer, describing nothing", false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, logs := verifyRoute(t, ModeAuthRequest)
			for range 2 {
				r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
				r.Header.Set("Accept", "application/json")
				if tc.describe {
					r.Header.Set("X-Forwarded-Uri", "/reports")
				}
				if err := rt.Verify(httptest.NewRecorder(), r, world.run, dutyOrigin(), nil, tc.trusted); err != nil {
					t.Fatal(err)
				}
			}
			n := 0
			for _, e := range logs.All() {
				if strings.HasPrefix(e.Message, msg) {
					if e.Level != zapcore.WarnLevel {
						t.Errorf("logged at %s, want WARN", e.Level)
					}
					n++
				}
			}
			if n != tc.warnings {
				t.Errorf("%d warnings, want %d", n, tc.warnings)
			}
		})
	}
}

// TestVerifyForbiddenNavigationIsPage: a signed-in person the route's rules
// refuse, navigating behind Traefik or Caddy's forward_auth (which show the
// verify answer as it is), gets the Access denied page, not the JSON a
// script gets.
func TestVerifyForbiddenNavigationIsPage(t *testing.T) {
	world := newDutyWorld(t)
	rt, _ := verifyRoute(t, ModeForwardAuth)
	var err error
	if rt.Access, err = NewAccessPolicy(nil, []AccessRule{{Kind: "domain", Values: []string{"example.com"}}}); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
	for k, v := range map[string]string{"X-Forwarded-Uri": "/reports", "Accept": "text/html",
		"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"} {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := rt.Verify(w, r, world.run, dutyOrigin(), []string{world.token}, true); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusForbidden || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(w.Body.String(), "Access denied") || w.Header().Get("X-Forwarded-Email") != "" {
		t.Errorf("answer %d %q, X-Forwarded-Email %q:\n%s\nwant the 403 Access denied page without identity",
			w.Code, w.Header().Get("Content-Type"), w.Header().Get("X-Forwarded-Email"), w.Body)
	}
}

// TestAnswerVerifyKeepsTheErrorsStatus: AnswerVerify answers a failure
// the sso handler hands it (the 503 of an app not running yet) with that
// error's status, uncacheable and without a body, for the proxy to pass
// on; an error that names no status is a 500, and nil or ErrAnswered
// writes nothing.
func TestAnswerVerifyKeepsTheErrorsStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int // 0: nothing written
	}{
		{"app not running", &Error{Status: http.StatusServiceUnavailable, Err: errors.New("starting")}, http.StatusServiceUnavailable},
		{"too early", httpError(http.StatusTooEarly, errors.New("early data")), http.StatusTooEarly},
		{"no status", errors.New("boom"), http.StatusInternalServerError},
		{"nil", nil, 0},
		{"answered", ErrAnswered, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, _ := verifyRoute(t, ModeAuthRequest)
			w := httptest.NewRecorder()
			if err := rt.AnswerVerify(w, tc.err); err != nil {
				t.Fatalf("AnswerVerify: %v, want nil", err)
			}
			if tc.status == 0 {
				if len(w.Header()) != 0 || w.Body.Len() != 0 {
					t.Errorf("wrote header %v, body %q; want nothing", w.Header(), w.Body)
				}
				return
			}
			if w.Code != tc.status || w.Header().Get("Cache-Control") != "no-store" || w.Body.Len() != 0 {
				t.Errorf("answer %d, Cache-Control %q, body %q; want %d, no-store, no body", w.Code, w.Header().Get("Cache-Control"), w.Body, tc.status)
			}
		})
	}
}

// deferredHeaders is a ResponseWriter that adds response headers as the
// answer's status is written, as Caddy's header directive does when
// deferred (header ... +Field value, or defer).
type deferredHeaders struct {
	http.ResponseWriter
	add http.Header
}

func (d *deferredHeaders) WriteHeader(status int) {
	for k, vs := range d.add {
		for _, v := range vs {
			d.Header().Add(k, v)
		}
	}
	d.ResponseWriter.WriteHeader(status)
}

// TestVerifyAnswerHeadersAddedLater: the header values a verify answer
// sets (Cache-Control, the app's Cookie, Content-Length) share one array;
// a handler around the gateway that adds to one of them as the status is
// written (Caddy's deferred header ops) changes that one alone, not the
// others' values.
func TestVerifyAnswerHeadersAddedLater(t *testing.T) {
	world := newDutyWorld(t)
	for _, tc := range []struct {
		name string
		add  http.Header
	}{
		{"Cache-Control added", http.Header{"Cache-Control": {"private"}}},
		{"Cookie added", http.Header{"Cookie": {"added=1"}}},
		{"both added", http.Header{"Cache-Control": {"private"}, "Cookie": {"added=1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, _ := verifyRoute(t, ModeForwardAuth)
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
			r.Header.Set("Cookie", "theme=dark; "+SessionCookiePlain+"="+world.token)
			rec := httptest.NewRecorder()
			if err := rt.Verify(&deferredHeaders{rec, tc.add}, r, world.run, dutyOrigin(), []string{world.token}, true); err != nil {
				t.Fatal(err)
			}
			h := rec.Header()
			want := http.Header{"Cache-Control": {"no-store"}, "Cookie": {"theme=dark"}, "Content-Length": {"0"}}
			for k, vs := range tc.add {
				want[k] = append(want[k], vs...)
			}
			for k, vs := range want {
				if !slices.Equal(h[k], vs) {
					t.Errorf("%s %q, want %q", k, h[k], vs)
				}
			}
		})
	}
}

// TestVerifyFrames: the verify endpoint answers a frame without a session
// as the sso directive does (signInFrom, frameAnswer), in either mode (a
// frame is no navigation, so forward_auth does not redirect it): a frame
// of this site's pages gets the sign_in_again page, whose link signs in in
// the whole window and comes back to the page the frame is in; one in
// another site's page gets the cross_site_frame page, whose link opens the
// original request's page (the site's URL of it, as the login URL is) in a
// window of its own.
func TestVerifyFrames(t *testing.T) {
	world := newDutyWorld(t)
	for _, mode := range []string{ModeAuthRequest, ModeForwardAuth} {
		for _, tc := range []struct {
			site, referer string
			name          string // the page
			link, target  string
		}{
			{"same-origin", "https://app.example.com/dashboard", PageSignInAgain, "https://app.example.com/.sso/login?return_to=%2Fdashboard", "_top"},
			{"same-site", "https://portal.example.com/", PageSignInAgain, "https://app.example.com/.sso/login?return_to=%2F", "_top"},
			{"cross-site", "https://portal.example.net/", PageCrossSiteFrame, "https://app.example.com/widget?tab=2", "_blank"},
		} {
			t.Run(mode+" "+tc.site, func(t *testing.T) {
				rt, _ := verifyRoute(t, mode)
				r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
				for k, v := range map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe",
					"Sec-Fetch-Site": tc.site, "Referer": tc.referer, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/widget?tab=2"} {
					r.Header.Set(k, v)
				}
				w := httptest.NewRecorder()
				if err := rt.Verify(w, r, world.run, dutyOrigin(), nil, true); err != nil {
					t.Fatal(err)
				}
				body := w.Body.String()
				want := `<a href="` + strings.ReplaceAll(tc.link, "&", "&amp;") + `" target="` + tc.target + `"`
				if w.Code != http.StatusUnauthorized || !strings.Contains(body, want) ||
					!strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors *") {
					t.Errorf("answer %d, CSP %q, want 401, framed, the %s page with %s:\n%s", w.Code, w.Header().Get("Content-Security-Policy"), tc.name, want, body)
				}
				if tc.name == PageCrossSiteFrame && strings.Contains(body, "Sign in") {
					t.Errorf("a frame in another site's page offers a sign-in, which cannot make it show:\n%s", body)
				}
			})
		}
	}
}
