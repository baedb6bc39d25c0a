package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
)

// These fast tests pin the checks of a protected route's request path
// (route.go, verify.go, cookies.go, origin.go, endpoints.go,
// recentlogouts.go) that only the slower Caddy and browser tests reached,
// or none: each fails when the check it names is dropped or inverted.

// TestCookieValuesTriesTheBound: a browser holding several session cookies
// of the gateway's name (a sibling site's plant first) has each of the
// first MaxSessionCookies tried, across Cookie lines and quoted, and no
// more (each one tried may cost a store read).
func TestCookieValuesTriesTheBound(t *testing.T) {
	h := http.Header{"Cookie": {
		`sso_session=a; theme=dark; sso_session="b"`,
		"sso_session=c; sso_session=d; sso_session=e",
	}}
	var buf [MaxSessionCookies]string
	got := CookieValues(h, SessionCookiePlain, &buf)
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("CookieValues = %q, want %q", got, want)
	}
}

// TestSessionCookieAttributes: the session cookie is HttpOnly,
// SameSite=Lax, host-only for path / and ends with the browser (no
// Max-Age), Secure and __Host- named except on a plain-http loopback site;
// the sign-out's clearing cookie has the same name, path and attributes
// (a browser replaces a cookie only by name, domain and path) and
// Max-Age=0.
func TestSessionCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		site   idp.Origin
		cookie string
		secure bool
	}{
		{"https", idp.Origin{Scheme: "https", Host: "app.example.com"}, SessionCookieSecure, true},
		{"plain http behind a TLS proxy", idp.Origin{Scheme: "http", Host: "app.example.com"}, SessionCookieSecure, true},
		{"plain-http loopback", idp.Origin{Scheme: "http", Host: "127.0.0.1:8080"}, SessionCookiePlain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Origin{Site: tc.site}
			check := func(what string, set func(w http.ResponseWriter), value string, cleared bool) {
				w := httptest.NewRecorder()
				set(w)
				cs := w.Result().Cookies()
				if len(cs) != 1 {
					t.Fatalf("%s: Set-Cookie %q, want one", what, w.Header().Values("Set-Cookie"))
				}
				c := cs[0]
				if c.Name != tc.cookie || c.Value != value || c.Path != "/" || c.Domain != "" || !c.HttpOnly ||
					c.Secure != tc.secure || c.SameSite != http.SameSiteLaxMode || (c.MaxAge < 0) != cleared || (!cleared && c.MaxAge != 0) {
					t.Errorf("%s: Set-Cookie %q, want %s=%q; Path=/; HttpOnly; Secure=%v; SameSite=Lax; cleared=%v",
						what, w.Header().Get("Set-Cookie"), tc.cookie, value, tc.secure, cleared)
				}
			}
			check("set", func(w http.ResponseWriter) { setSessionCookie(w, o, "tok") }, "tok", false)
			check("clear", func(w http.ResponseWriter) { clearSessionCookie(w, o) }, "", true)
		})
	}
}

// TestRequestOrigin: the scheme is the connection's and the host the Host
// header's, as browsers write it (lower case, no default port); a trusted
// proxy's X-Forwarded-Proto (https or http only) and X-Forwarded-Host
// replace them, anyone else's are ignored; a forwarded host that is not
// one host[:port] gives an empty host, and one equal to Host is no
// forwarding.
func TestRequestOrigin(t *testing.T) {
	for _, tc := range []struct {
		name            string
		tls             bool
		host, xfp, xfh  string
		trusted         bool
		want            string // the site
		forwarded       bool
		forwardedHeader string // Origin.Forwarded
	}{
		{"plain http", false, "App.Example.com:80", "", "", false, "http://app.example.com", false, ""},
		{"TLS", true, "app.example.com:443", "", "", false, "https://app.example.com", false, ""},
		{"TLS, another port", true, "app.example.com:8443", "", "", false, "https://app.example.com:8443", false, ""},
		{"untrusted peer's headers ignored", false, "app.example.com", "https", "evil.example", false, "http://app.example.com", false, ""},
		{"trusted proxy", false, "10.0.0.5:8080", "https", "App.Example.com:443", true, "https://app.example.com", true, "App.Example.com:443"},
		{"trusted proxy says http", true, "app.example.com", "http", "", true, "http://app.example.com", false, ""},
		{"trusted proxy's unknown scheme ignored", true, "app.example.com", "wss", "", true, "https://app.example.com", false, ""},
		{"forwarded host equal to Host", false, "app.example.com", "", "app.example.com", true, "http://app.example.com", false, ""},
		{"forwarded list of two hosts", false, "app.example.com", "https", "a.example, b.example", true, "https://", true, "a.example, b.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := "http"
			if tc.tls {
				scheme = "https"
			}
			r := httptest.NewRequest(http.MethodGet, scheme+"://placeholder/x", nil)
			r.Host = tc.host
			if tc.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", tc.xfp)
			}
			if tc.xfh != "" {
				r.Header.Set("X-Forwarded-Host", tc.xfh)
			}
			o, forwarded := RequestOrigin(r, tc.trusted)
			if o.Site.String() != tc.want || forwarded != tc.forwarded || o.Forwarded != tc.forwardedHeader || o.Vouched {
				t.Errorf("RequestOrigin = %q (forwarded %v, X-Forwarded-Host %q, vouched %v), want %q (forwarded %v, %q, not vouched)",
					o.Site.String(), forwarded, o.Forwarded, o.Vouched, tc.want, tc.forwarded, tc.forwardedHeader)
			}
		})
	}
	o, err := BaseOrigin("https://app.example.com")
	if err != nil || !o.Vouched || o.SessionCookie() != SessionCookieSecure {
		t.Errorf("BaseOrigin = %+v, %v; want it vouched, with the __Host- cookie", o, err)
	}
}

// TestParseMode: "protect" or nothing protects; the verify modes are
// themselves; anything else is refused.
func TestParseMode(t *testing.T) {
	for in, want := range map[string]string{"": ModeProtect, "protect": ModeProtect,
		"auth_request": ModeAuthRequest, "forward_auth": ModeForwardAuth} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Protect", "forward-auth", "verify"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) accepted", in)
		}
	}
}

// TestSignOutOnlyFromThisSite: a sign-out POST that a browser marks as
// coming from another site (Origin of another scheme or host, or
// Sec-Fetch-Site other than same-origin or none) is refused with the
// cross_site_logout page, and the session and its cookie stay; a script's
// POST (neither header) and the site's own form sign out.
func TestSignOutOnlyFromThisSite(t *testing.T) {
	for _, tc := range []struct {
		name, origin, site string
		refused            bool
	}{
		{"the site's form", "https://app.example.com", "same-origin", false},
		{"typed into the address bar", "", "none", false},
		{"a script without fetch metadata", "", "", false},
		{"another site's form", "https://evil.example", "cross-site", true},
		{"another origin, no fetch metadata", "https://evil.example", "", true},
		{"plain http of the same host", "http://app.example.com", "", true},
		{"a sibling subdomain", "", "same-site", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(),
				IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &logoutProvider{name: "corp"}}}}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.site != "" {
				r.Header.Set("Sec-Fetch-Site", tc.site)
			}
			w := httptest.NewRecorder()
			err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)
			pe, isPage := AsPageError(err)
			refused := isPage && pe.Code == "cross_site_logout" && pe.Status == http.StatusForbidden
			_, resolveErr := world.run.Sessions.Resolve(r.Context(), world.token)
			if refused != tc.refused || (resolveErr == nil) != tc.refused || (w.Header().Get("Set-Cookie") == "") != tc.refused {
				t.Errorf("answer %v, %d (Set-Cookie %q), session alive: %v; want refused=%v",
					err, w.Code, w.Header().Get("Set-Cookie"), resolveErr == nil, tc.refused)
			}
		})
	}
}

// TestVerifyAnswers: the forward-auth answer for each kind of original
// request a trusted proxy describes. Without a session: 401 with the login
// URL in Location, absolute on a vouched origin (the proxy's redirect
// leaves the gateway's host) and relative on another; in forward_auth mode
// a navigation (the reported method read in any case) gets the 302
// itself, and a form posted or a script's request its 401. The access
// rules' refusal is a 403, and the log names the original page. A signed-in
// request gets 200 with an empty body and the identity headers. No answer
// is stored.
func TestVerifyAnswers(t *testing.T) {
	navigation := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	login := "https://app.example.com/.sso/login?return_to=%2Freports%3Fy%3D1"
	for _, tc := range []struct {
		name     string
		mode     string
		headers  map[string]string // besides X-Forwarded-Uri: /reports?y=1
		signedIn bool
		denied   bool // the rules refuse ada
		unvouchd bool
		status   int
		location string
	}{
		{"auth_request, navigation", ModeAuthRequest, navigation, false, false, false, http.StatusUnauthorized, login},
		{"forward_auth, navigation", ModeForwardAuth, navigation, false, false, false, http.StatusFound, login},
		{"forward_auth, navigation reported as get", ModeForwardAuth, map[string]string{"X-Forwarded-Method": "get", "Accept": "text/html"}, false, false, false, http.StatusFound, login},
		{"forward_auth, a form posted", ModeForwardAuth, map[string]string{"X-Forwarded-Method": "POST", "Accept": "text/html", "Sec-Fetch-Mode": "navigate"}, false, false, false, http.StatusUnauthorized, login},
		{"forward_auth, a script", ModeForwardAuth, map[string]string{"Accept": "application/json", "Sec-Fetch-Mode": "cors"}, false, false, false, http.StatusUnauthorized, login},
		{"unvouched origin: a relative login URL", ModeForwardAuth, navigation, false, false, true, http.StatusFound, "/.sso/login?return_to=%2Freports%3Fy%3D1"},
		{"signed in", ModeForwardAuth, navigation, true, false, false, http.StatusOK, ""},
		{"signed in, refused by the rules", ModeAuthRequest, map[string]string{"Accept": "application/json"}, true, true, false, http.StatusForbidden, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			plan, err := NewHeaderPlan("", nil)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			rt := &Route{PathPrefix: "/.sso/", Mode: tc.mode, Logger: zap.New(core), Headers: plan,
				IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
			rt.Default = rt.IdPs[0]
			if tc.denied {
				if rt.Access, err = NewAccessPolicy(nil, []AccessRule{{Kind: "domain", Values: []string{"example.com"}}}); err != nil {
					t.Fatal(err)
				}
			}
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
			r.Header.Set("X-Forwarded-Uri", "/reports?y=1")
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			var tokens []string
			if tc.signedIn {
				tokens = []string{world.token}
			}
			o := dutyOrigin()
			o.Vouched = !tc.unvouchd
			w := httptest.NewRecorder()
			if err := rt.Verify(w, r, world.run, o, tokens, true); err != nil {
				t.Fatal(err)
			}
			h := w.Header()
			if w.Code != tc.status || h.Get("Location") != tc.location || h.Get("Cache-Control") != "no-store" {
				t.Errorf("answer %d, Location %q, Cache-Control %q; want %d, %q, no-store", w.Code, h.Get("Location"), h.Get("Cache-Control"), tc.status, tc.location)
			}
			switch tc.status {
			case http.StatusOK:
				if h.Get("Content-Length") != "0" || w.Body.Len() != 0 || h.Get("X-Forwarded-Email") != "ada@example.com" {
					t.Errorf("200: Content-Length %q, body %q, X-Forwarded-Email %q", h.Get("Content-Length"), w.Body, h.Get("X-Forwarded-Email"))
				}
			case http.StatusForbidden:
				if got := decodeJSON(t, w)["error"]; got != "access denied" {
					t.Errorf("403 error %q", got)
				}
				if l := logs.FilterMessage("access denied by the route's rules").All(); len(l) != 1 || l[0].ContextMap()["path"] != "/reports" {
					t.Errorf("log of the refusal %v, want one line naming path /reports", l)
				}
			}
		})
	}
}

// requestProvider is an IdP whose sign-in begins with a redirect to it
// and notes each sign-in request it was asked for.
type requestProvider struct {
	*reachedProvider
	begun []idp.SignInRequest
}

func (p *requestProvider) Begin(w http.ResponseWriter, r *http.Request, _ string, req idp.SignInRequest) error {
	p.begun = append(p.begun, req)
	http.Redirect(w, r, "https://idp.example.com/authorize", http.StatusFound)
	return nil
}

// dispatchRoute is a route with the OIDC IdP "work" (its default) and the
// SAML IdP "corp", whose providers note what reaches them.
func dispatchRoute() (*Route, *requestProvider, *requestProvider) {
	work := &requestProvider{reachedProvider: &reachedProvider{name: "work", protocol: idp.ProtocolOIDC}}
	corp := &requestProvider{reachedProvider: &reachedProvider{name: "corp", protocol: idp.ProtocolSAML}}
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{
		{Name: "work", Protocol: idp.ProtocolOIDC, Provider: work},
		{Name: "corp", Protocol: idp.ProtocolSAML, Provider: corp},
	}}
	rt.Default = rt.IdPs[0]
	return rt, work, corp
}

// TestEndpointDispatch: what each endpoint path answers by method and
// client before any provider is reached. The gateway's own endpoints
// answer another method with 405 and their Allow; the JWKS exists only on
// a route that signs; a callback path whose protocol is not its IdP's, or
// of an IdP the route lacks, is the config_changed page for a person and a
// bare 404 for a script; a callback the IdP POSTs is a 405 for a script's
// GET and reaches the provider for a person's.
func TestEndpointDispatch(t *testing.T) {
	world := newDutyWorld(t)
	script := map[string]string{"Accept": "application/json", "Sec-Fetch-Mode": "cors"}
	person := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	for _, tc := range []struct {
		name, method, path string
		headers            map[string]string
		status             int    // of the *Error or page returned
		allow              string // its Allow
		page               string // the page's code, "" for an *Error
		reached            int    // requests that reach a provider
	}{
		{"login by POST", http.MethodPost, "/.sso/login", person, http.StatusMethodNotAllowed, "GET, HEAD", "", 0},
		{"whoami by POST", http.MethodPost, "/.sso/whoami", script, http.StatusMethodNotAllowed, "GET, HEAD", "", 0},
		{"signin-failed by POST", http.MethodPost, "/.sso/signin-failed", person, http.StatusMethodNotAllowed, "GET, HEAD", "", 0},
		{"logout by PUT", http.MethodPut, "/.sso/logout", script, http.StatusMethodNotAllowed, "GET, HEAD, POST", "", 0},
		{"JWKS of a route that does not sign", http.MethodGet, "/.sso/jwks.json", script, http.StatusNotFound, "", "", 0},
		{"OIDC callback named for the SAML IdP", http.MethodGet, "/.sso/oidc/corp/callback?state=s&code=c", person, http.StatusNotFound, "", CodeSignInConfigChanged, 0},
		{"ACS of an IdP the route lacks, a script's", http.MethodGet, "/.sso/saml/gone/acs", script, http.StatusNotFound, "", "", 0},
		{"ACS of an IdP the route lacks, a person's", http.MethodGet, "/.sso/saml/gone/acs", person, http.StatusNotFound, "", CodeSignInConfigChanged, 0},
		{"ACS by a script's GET", http.MethodGet, "/.sso/saml/corp/acs", script, http.StatusMethodNotAllowed, "POST", "", 0},
		{"ACS by a person's GET", http.MethodGet, "/.sso/saml/corp/acs", person, http.StatusBadRequest, "", "invalid_response", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, work, corp := dispatchRoute()
			r := httptest.NewRequest(tc.method, "https://app.example.com"+tc.path, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("Cookie", "theme=dark; "+SessionCookieSecure+"=tok")
			r = idp.WithOrigin(r, dutyOrigin().Site)
			w := httptest.NewRecorder()
			err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil)
			// The caller hands a failed request on to the server's error
			// routes, perhaps a reverse_proxy: without the session cookie.
			if got := r.Header.Get("Cookie"); got != "theme=dark" {
				t.Errorf("after the error, Cookie %q, want theme=dark", got)
			}
			status, code := 0, ""
			if pe, ok := AsPageError(err); ok {
				status, code = pe.Status, pe.Code
			} else if e, ok := err.(*Error); ok {
				status = e.Status
			}
			reached := len(work.reached) + len(corp.reached)
			if status != tc.status || code != tc.page || w.Header().Get("Allow") != tc.allow || reached != tc.reached {
				t.Errorf("answer %v (status %d, page %q, Allow %q, %d reached), want %d, page %q, Allow %q, %d reached",
					err, status, code, w.Header().Get("Allow"), reached, tc.status, tc.page, tc.allow, tc.reached)
			}
		})
	}
}

// TestLoginEndpoint: /.sso/login begins a sign-in at the IdP named (an
// unknown name is the unknown_idp page, not the default's sign-in),
// reauthenticating for reauth=1 or true only; a request that cannot
// follow a redirect to the IdP (a script's, a frame's) gets the 401 whose
// login URL keeps the IdP and reauth; with a chooser, reauth goes to the
// IdP of the browser's session rather than the chooser.
func TestLoginEndpoint(t *testing.T) {
	world := newDutyWorld(t) // ada, signed in at "corp"
	person := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	for _, tc := range []struct {
		name, query string
		headers     map[string]string
		chooser     bool
		status      int    // the answer's, or the page's
		begunAt     string // the IdP the sign-in began at
		reauth      bool
		login       string // the 401's login URL
	}{
		{"default IdP", "return_to=%2Fa", person, false, http.StatusFound, "work", false, ""},
		{"named IdP", "idp=corp&return_to=%2Fa", person, false, http.StatusFound, "corp", false, ""},
		{"reauth=1", "reauth=1", person, false, http.StatusFound, "work", true, ""},
		{"reauth=true", "reauth=true", person, false, http.StatusFound, "work", true, ""},
		{"reauth=yes is an ordinary sign-in", "reauth=yes", person, false, http.StatusFound, "work", false, ""},
		{"unknown IdP", "idp=nope", person, false, http.StatusNotFound, "", false, ""},
		{"a script", "idp=corp&reauth=1&return_to=%2Fa", map[string]string{"Accept": "*/*", "Sec-Fetch-Mode": "cors"}, false,
			http.StatusUnauthorized, "", false, "/.sso/login?idp=corp&return_to=%2Fa&reauth=1"},
		{"chooser, reauth at the session's IdP", "reauth=1", person, true, http.StatusFound, "corp", true, ""},
		{"chooser, no IdP named", "return_to=%2Fa", person, true, http.StatusOK, "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, work, corp := dispatchRoute()
			rt.Chooser = tc.chooser
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login?"+tc.query, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			r = idp.WithOrigin(r, dutyOrigin().Site)
			w := httptest.NewRecorder()
			err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)
			status := answerStatus(t, w, err)
			begunAt, reauth := "", false
			for _, p := range []*requestProvider{work, corp} {
				if len(p.begun) > 0 {
					begunAt, reauth = p.name, p.begun[0].Reauthenticate
				}
			}
			if status != tc.status || begunAt != tc.begunAt || reauth != tc.reauth {
				t.Errorf("answer %d (%v), begun at %q (reauth %v); want %d, begun at %q (reauth %v)", status, err, begunAt, reauth, tc.status, tc.begunAt, tc.reauth)
			}
			if tc.login != "" {
				if got := decodeJSON(t, w)["login"]; got != tc.login {
					t.Errorf("401 login %q, want %q", got, tc.login)
				}
			}
		})
	}
}

// TestUnauthorizedScript: a script's request without a session gets a 401
// it can act on: JSON with the login URL, WWW-Authenticate naming it, not
// stored. A POST that does not ask for HTML (curl's */*) is a script's,
// not a form a person submitted. Its login comes back to the page the
// script runs in, its Referer on this site (a GET of the API's URL would
// show JSON or a 405), else to the request's own URL.
func TestUnauthorizedScript(t *testing.T) {
	for _, tc := range []struct {
		name, accept, referer string
		returnTo              string // escaped
	}{
		{"JSON, no Referer", "application/json", "", "%2Fapi%2Fsave%3Fx%3D1"},
		{"curl's */*, no Referer", "*/*", "", "%2Fapi%2Fsave%3Fx%3D1"},
		{"a fetch from a page of the site", "application/json", "https://app.example.com/editor?doc=7", "%2Feditor%3Fdoc%3D7"},
		{"a fetch from another site's page", "application/json", "https://evil.example/editor", "%2Fapi%2Fsave%3Fx%3D1"},
	} {
		rt := &Route{PathPrefix: "/.sso/", Default: &IdP{Name: "corp"}}
		r := httptest.NewRequest(http.MethodPost, "https://app.example.com/api/save?x=1", nil)
		r.Header.Set("Accept", tc.accept)
		if tc.referer != "" {
			r.Header.Set("Sec-Fetch-Mode", "cors")
			r.Header.Set("Referer", tc.referer)
		}
		w := httptest.NewRecorder()
		if err := rt.Unauthorized(w, r, dutyOrigin()); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		login := "/.sso/login?return_to=" + tc.returnTo
		body := decodeJSON(t, w)
		if w.Code != http.StatusUnauthorized || body["login"] != login || body["error"] != "authentication required" ||
			w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("WWW-Authenticate") != `SSO realm="corp", login="`+login+`"` {
			t.Errorf("%s: answer %d %v %v; want login %s", tc.name, w.Code, w.Header(), body, login)
		}
	}
}

// TestNavigationByHeaders: a GET or HEAD asking for HTML, or anything
// (*/*), is a navigation; a WebSocket upgrade, an XMLHttpRequest marked
// by X-Requested-With, another method or another Accept is not.
func TestNavigationByHeaders(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		headers      map[string]string
		want         bool
	}{
		{"HTML", http.MethodGet, map[string]string{"Accept": "text/html,application/xhtml+xml"}, true},
		{"HEAD", http.MethodHead, map[string]string{"Accept": "text/html"}, true},
		{"curl's */*", http.MethodGet, map[string]string{"Accept": "*/*"}, true},
		{"JSON", http.MethodGet, map[string]string{"Accept": "application/json"}, false},
		{"POST", http.MethodPost, map[string]string{"Accept": "text/html"}, false},
		{"WebSocket", http.MethodGet, map[string]string{"Accept": "*/*", "Upgrade": "websocket"}, false},
		{"XMLHttpRequest", http.MethodGet, map[string]string{"Accept": "*/*", "X-Requested-With": "XMLHttpRequest"}, false},
		{"a fetch in no-cors mode", http.MethodGet, map[string]string{"Accept": "*/*", "Sec-Fetch-Mode": "no-cors"}, false},
		{"a websocket's fetch mode", http.MethodGet, map[string]string{"Accept": "*/*", "Sec-Fetch-Mode": "websocket"}, false},
	} {
		r := httptest.NewRequest(tc.method, "https://app.example.com/", nil)
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		if got := IsNavigation(r); got != tc.want {
			t.Errorf("%s: IsNavigation = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestWhoamiRefusals: whoami without a session of the route's IdPs (none,
// or another IdP's) is a 401 "not signed in", and for a person the rules
// exclude a 403; none of its answers is stored.
func TestWhoamiRefusals(t *testing.T) {
	world := newDutyWorld(t) // ada, signed in at "corp"
	deny, err := NewAccessPolicy(nil, []AccessRule{{Kind: "domain", Values: []string{"example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		idps   []string
		access AccessPolicy
		tokens []string
		outer  bool // an sso before this one admitted ada's session
		status int
		body   string
	}{
		{"no session", []string{"corp"}, AccessPolicy{}, nil, false, http.StatusUnauthorized, "not signed in"},
		{"another IdP's session", []string{"work"}, AccessPolicy{}, []string{world.token}, false, http.StatusUnauthorized, "not signed in"},
		{"excluded by the rules", []string{"corp"}, deny, []string{world.token}, false, http.StatusForbidden, "access denied"},
		{"signed in", []string{"corp"}, AccessPolicy{}, []string{world.token}, false, http.StatusOK, ""},
		{"outer session", []string{"corp"}, AccessPolicy{}, nil, true, http.StatusOK, ""},
		{"outer session of another IdP", []string{"work"}, AccessPolicy{}, nil, true, http.StatusUnauthorized, "not signed in"},
		// The request's own cookies, when it has any, are its session.
		{"cookies and an outer session", []string{"corp"}, AccessPolicy{}, []string{"bogus"}, true, http.StatusUnauthorized, "not signed in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), Access: tc.access}
			for _, n := range tc.idps {
				rt.IdPs = append(rt.IdPs, &IdP{Name: n, Protocol: idp.ProtocolOIDC})
			}
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/whoami", nil)
			r.Header.Set("Accept", "application/json")
			w := httptest.NewRecorder()
			var outer *session.Identity
			if tc.outer {
				if outer, err = world.run.Sessions.Resolve(context.Background(), world.token); err != nil {
					t.Fatal(err)
				}
			}
			if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tc.tokens, outer); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("answer %d, Cache-Control %q; want %d, no-store", w.Code, w.Header().Get("Cache-Control"), tc.status)
			}
			if tc.body != "" {
				if got := decodeJSON(t, w)["error"]; got != tc.body {
					t.Errorf("error %q, want %q", got, tc.body)
				}
			}
		})
	}
}

// originLogoutProvider is a logoutProvider whose logout page lives on
// its own site, which the sign-out form must be allowed to reach.
type originLogoutProvider struct{ *logoutProvider }

func (p originLogoutProvider) LogoutOrigin(context.Context) string { return "https://idp.example.com" }

// TestSignOutAnswers: GET and HEAD show the sign-out button (a link or a
// prefetch must not sign out), its form allowed on to the IdP's logout; a
// POST signs out and goes on to the IdP's logout, on a vouched origin
// only; a second POST of a double click, its session ended by the first,
// goes on there too (the browser shows the second answer).
func TestSignOutAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		methods []string // in turn, with the same cookie; the last is judged
		vouched bool
		status  int
	}{
		{"GET shows the button", []string{http.MethodGet}, true, http.StatusOK},
		{"HEAD shows the button", []string{http.MethodHead}, true, http.StatusOK},
		{"POST", []string{http.MethodPost}, true, http.StatusSeeOther},
		{"POST on an unvouched origin: no IdP logout", []string{http.MethodPost}, false, http.StatusOK},
		{"a double click's second POST", []string{http.MethodPost, http.MethodPost}, true, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
				Provider: originLogoutProvider{&logoutProvider{name: "corp"}}}}}
			o := dutyOrigin()
			o.Vouched = tc.vouched
			var w *httptest.ResponseRecorder
			for _, m := range tc.methods {
				r := httptest.NewRequest(m, "https://app.example.com/.sso/logout", nil)
				r.Header.Set("Sec-Fetch-Site", "same-origin")
				w = httptest.NewRecorder()
				if err := rt.ServeEndpoint(w, r, world.run, o, []string{world.token}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if w.Code != tc.status {
				t.Errorf("answer %d, want %d (Location %q)", w.Code, tc.status, w.Header().Get("Location"))
			}
			_, err := world.run.Sessions.Resolve(context.Background(), world.token)
			if signedOut := err != nil; signedOut != (tc.methods[0] == http.MethodPost) {
				t.Errorf("session ended: %v, after %v", signedOut, tc.methods)
			}
			if tc.methods[0] != http.MethodPost && !strings.Contains(w.Header().Get("Content-Security-Policy"), "https://idp.example.com") {
				t.Errorf("the button's form may not reach the IdP's logout: CSP %q", w.Header().Get("Content-Security-Policy"))
			}
		})
	}
}

// TestWhoamiStoreAway: a cookie whose session cannot be read because the
// store is away is not "not signed in" (which would send the app's user
// to sign in again, in vain), whether the session or its user is what
// cannot be read: whoami answers 503 with Retry-After.
func TestWhoamiStoreAway(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cached bool // ada's session is in the session cache
	}{
		{"the session unread", false},
		{"the user unread", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			if !tc.cached {
				world.run.Sessions = session.New(world.run.Store, session.Config{}, nil, nil)
			}
			if err := world.run.Store.Close(); err != nil {
				t.Fatal(err)
			}
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/whoami", nil)
			r.Header.Set("Accept", "application/json")
			w := httptest.NewRecorder()
			err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)
			if pe, ok := AsPageError(err); ok {
				_ = pe.Write(w)
			}
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Errorf("answer %d (%v), Retry-After %q; want 503 with Retry-After", w.Code, err, w.Header().Get("Retry-After"))
			}
		})
	}
}

// callbackProvider is an OIDC IdP whose callback vouches for ada and
// returns to returnTo, or, with err, refuses with it.
type callbackProvider struct {
	idp.Provider // any other method: not expected here
	name         string
	returnTo     string
	err          error
}

func (p *callbackProvider) Name() string     { return p.name }
func (p *callbackProvider) Protocol() string { return idp.ProtocolOIDC }

func (p *callbackProvider) Callback(http.ResponseWriter, *http.Request, string) (*idp.Assertion, string, error) {
	if p.err != nil {
		return nil, "", p.err
	}
	return &idp.Assertion{IdP: p.name, Protocol: idp.ProtocolOIDC, Subject: "sub-ada", EmailVerified: true,
		Attributes: map[string][]string{"sub": {"sub-ada"}, "email": {"ada@example.com"}}}, p.returnTo, nil
}

// TestCallbackAnswers: a sign-in that completes sets the session cookie
// and sends the browser, by a 303 that is not stored, to the page it
// began on, never off the site. A callback whose sign-in is gone (the back
// button after signing in) sends a browser signed in at that IdP home, and
// shows one signed in elsewhere the sign-in-failed page.
func TestCallbackAnswers(t *testing.T) {
	m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	gone := &idp.LoginError{Code: "flow_missing", Err: idp.ErrFlowMissing}
	for _, tc := range []struct {
		name, idpName, returnTo string
		err                     error
		status                  int
		location                string
		cookie                  bool
	}{
		{"signed in", "corp", "/reports?y=1", nil, http.StatusSeeOther, "/reports?y=1", true},
		{"a return path off the site", "corp", "https://evil.example/x", nil, http.StatusSeeOther, "/", true},
		{"repeated, signed in at that IdP", "corp", "", gone, http.StatusSeeOther, "/", false},
		{"repeated, signed in at another IdP", "work", "", gone, http.StatusBadRequest, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t) // ada, signed in at "corp"
			p := &IdP{Name: tc.idpName, Protocol: idp.ProtocolOIDC,
				Provider: &callbackProvider{name: tc.idpName, returnTo: tc.returnTo, err: tc.err},
				SignIn:   signin.IdP{Name: tc.idpName, Mapper: m, Rules: provision.Rules{JIT: true}}}
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{p}, Default: p}
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/"+tc.idpName+"/callback?state=s&code=c", nil)
			r.Header.Set("Accept", "text/html")
			r = idp.WithOrigin(r, dutyOrigin().Site)
			w := httptest.NewRecorder()
			err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)
			status := answerStatus(t, w, err)
			h := w.Header()
			if status != tc.status || h.Get("Location") != tc.location {
				t.Errorf("answer %d (%v), Location %q; want %d, %q", status, err, h.Get("Location"), tc.status, tc.location)
			}
			if tc.location != "" && h.Get("Cache-Control") != "no-store" {
				t.Errorf("redirect stored: Cache-Control %q", h.Get("Cache-Control"))
			}
			if got := h.Get("Set-Cookie") != ""; got != tc.cookie {
				t.Errorf("Set-Cookie %q, want one: %v", h.Get("Set-Cookie"), tc.cookie)
			}
		})
	}
}

// TestVerifyRefusalCarriesNoIdentity: a verify answer that fails after
// the identity headers were set (here: a route that signs the identity on
// a host nothing vouches for) carries none of them: Traefik and Caddy's
// forward_auth hand that answer to the browser, headers and all.
func TestVerifyRefusalCarriesNoIdentity(t *testing.T) {
	world := newDutyWorld(t)
	plan, err := NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := &Route{PathPrefix: "/.sso/", Mode: ModeForwardAuth, Logger: zap.NewNop(), Headers: plan,
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	rt.Default = rt.IdPs[0]
	rt.SignIdentity(SignerConfig{})
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
	r.Header.Set("Accept", "application/json")
	o := dutyOrigin()
	o.Vouched = false
	w := httptest.NewRecorder()
	if err := rt.Verify(w, r, world.run, o, []string{world.token}, true); err != nil {
		t.Fatal(err)
	}
	if w.Code == http.StatusOK || w.Header().Get("X-Forwarded-Email") != "" || w.Header().Get("X-Forwarded-User") != "" {
		t.Errorf("answer %d with headers %v: want a refusal without identity headers", w.Code, w.Header())
	}
}

// decodeJSON decodes a recorder's JSON body into a map of strings.
func decodeJSON(t *testing.T, w *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	return m
}

// answerStatus is the status a person sees for an endpoint's answer: the
// page error's when it returned one (the caller writes the page), else
// what it wrote.
func answerStatus(t *testing.T, w *httptest.ResponseRecorder, err error) int {
	t.Helper()
	if pe, ok := AsPageError(err); ok {
		return pe.Status
	} else if err != nil {
		t.Fatal(err)
	}
	return w.Code
}
