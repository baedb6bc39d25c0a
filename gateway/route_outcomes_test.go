package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
)

// callbackRoute is a route whose one OIDC IdP, corp, answers callbacks
// with prov, signing users in with rules.
func callbackRoute(t *testing.T, prov idp.Provider, rules provision.Rules) *Route {
	t.Helper()
	m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &IdP{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: prov,
		SignIn: signin.IdP{Name: "corp", Mapper: m, Rules: rules}}
	return &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{p}, Default: p}
}

// callback sends a browser's GET to corp's OIDC callback with tokens.
func callback(t *testing.T, rt *Route, run *Runtime, tokens []string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/corp/callback?state=s&code=c", nil)
	r.Header.Set("Accept", "text/html")
	r = idp.WithOrigin(r, dutyOrigin().Site)
	w := httptest.NewRecorder()
	return w, rt.ServeEndpoint(w, r, run, dutyOrigin(), tokens, nil)
}

// TestCallbackRefusalPages: a callback the provider refuses shows the page
// of its reason, with that page's status: an IdP whose settings contradict
// the configuration is the misconfigured page (500), one whose keys could
// not be fetched the unavailable page (502, trying again may help), and a
// sign-in whose flow cookie has expired, from a browser signed in at that
// IdP, is a repeated sign-in sent home. No refusal sets a session cookie.
func TestCallbackRefusalPages(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		page     string // "" for a redirect
		location string
	}{
		{"misconfigured", &idp.LoginError{Code: idp.CodeMisconfigured, Err: errors.New("alg")}, http.StatusInternalServerError, PageMisconfigured, ""},
		{"keys unreachable", &idp.LoginError{Code: oidc.CodeIdPUnavailable, Err: errors.New("jwks")}, http.StatusBadGateway, PageUnavailable, ""},
		{"flow expired, signed in there", &idp.LoginError{Code: "flow_expired", Err: idp.ErrFlowExpired}, http.StatusSeeOther, "", "/"},
		{"flow missing, signed in there", &idp.LoginError{Code: "flow_missing", Err: idp.ErrFlowMissing}, http.StatusSeeOther, "", "/"},
		{"signature refused", &idp.LoginError{Code: "id_token_signature", Err: errors.New("sig")}, http.StatusBadRequest, PageSignInFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t) // ada, signed in at corp
			rt := callbackRoute(t, &callbackProvider{name: "corp", err: tc.err}, provision.Rules{JIT: true})
			w, err := callback(t, rt, world.run, []string{world.token})
			status, page := w.Code, ""
			if pe, ok := AsPageError(err); ok {
				status, page = pe.Status, pe.Name
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status || page != tc.page || w.Header().Get("Location") != tc.location {
				t.Errorf("answer %d, page %q, Location %q; want %d, %q, %q", status, page, w.Header().Get("Location"), tc.status, tc.page, tc.location)
			}
			for _, c := range w.Result().Cookies() {
				if c.Name == dutyOrigin().SessionCookie() && c.MaxAge >= 0 {
					t.Errorf("a refused callback set the session cookie %v", c)
				}
			}
		})
	}
}

// singleUseProvider vouches for a person whose assertion carries one
// single-use ID (the OIDC state), as the real providers do.
type singleUseProvider struct{ *callbackProvider }

func (p singleUseProvider) Callback(w http.ResponseWriter, r *http.Request, base string) (*idp.Assertion, string, error) {
	a, returnTo, err := p.callbackProvider.Callback(w, r, base)
	if a != nil {
		a.SingleUse = []idp.SingleUse{{Kind: "oidc_state", ID: "corp:state-1", Until: time.Now().Add(time.Hour), Code: "oidc_state_replayed"}}
	}
	return a, returnTo, err
}

// TestCallbackReplayAndDenialGiveNoSession: an assertion whose single-use
// ID was consumed by a sign-in already (a replay) and a person the JIT
// rules refuse get a page and no session cookie, never a redirect into
// the site.
func TestCallbackReplayAndDenialGiveNoSession(t *testing.T) {
	t.Run("replay", func(t *testing.T) {
		run := newDutyWorld(t).run // ada exists: the sign-in needs no more attributes
		rt := callbackRoute(t, singleUseProvider{&callbackProvider{name: "corp", returnTo: "/"}}, provision.Rules{JIT: true})
		if w, err := callback(t, rt, run, nil); err != nil || w.Code != http.StatusSeeOther {
			t.Fatalf("the first callback: %d, %v; want 303 signed in", w.Code, err)
		}
		w, err := callback(t, rt, run, nil)
		pe, ok := AsPageError(err)
		if !ok || pe.Name != PageSignInFailed || pe.Code != "oidc_state_replayed" {
			t.Fatalf("the replayed callback: %d, %v; want the signin_failed page with oidc_state_replayed", w.Code, err)
		}
		if c := w.Header().Get("Set-Cookie"); strings.Contains(c, dutyOrigin().SessionCookie()+"=") {
			t.Errorf("the replayed callback set a session cookie: %q", c)
		}
	})
	t.Run("denied", func(t *testing.T) {
		run := newTestRuntime(t) // nobody exists: without JIT, ada is refused
		rt := callbackRoute(t, &callbackProvider{name: "corp", returnTo: "/"}, provision.Rules{})
		w, err := callback(t, rt, run, nil)
		pe, ok := AsPageError(err)
		if !ok || pe.Name != PageDenied || pe.Status != http.StatusForbidden {
			t.Fatalf("a callback the JIT rules refuse: %d, %v; want the denied page", w.Code, err)
		}
		if c := w.Header().Get("Set-Cookie"); c != "" {
			t.Errorf("a denied callback set a cookie: %q", c)
		}
	})
}

// TestConfigChangedReturnsToTheFlowsPage: the callback of an IdP the route
// no longer has signs in again at the route's IdP and comes back to the
// page the old sign-in's flow cookie names, which it clears.
func TestConfigChangedReturnsToTheFlowsPage(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	rt.Default = rt.IdPs[0]
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/gone/callback?state=K&code=c", nil)
	r.Header.Set("Accept", "text/html")
	r = idp.WithOrigin(r, dutyOrigin().Site)
	begun := httptest.NewRecorder()
	if err := world.run.Flows.Save(begun, r, idp.SignInFlowID(idp.ProtocolOIDC, "gone", "K"), idp.FlowReturn{ReturnTo: "/reports?y=1"}, idp.DefaultLoginTimeout, http.SameSiteLaxMode); err != nil {
		t.Fatal(err)
	}
	for _, c := range begun.Result().Cookies() {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	pe, ok := AsPageError(rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil))
	if !ok || pe.Code != CodeSignInConfigChanged || pe.Status != http.StatusNotFound {
		t.Fatalf("answer %v, want the %s page (404)", pe, CodeSignInConfigChanged)
	}
	if want := "/.sso/login?return_to=" + url.QueryEscape("/reports?y=1"); pe.Links[0].Href != want {
		t.Errorf("sign-in link %q, want %q", pe.Links[0].Href, want)
	}
	if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("the old sign-in's flow cookie is not cleared: Set-Cookie %q", w.Header().Get("Set-Cookie"))
	}
}

// TestMisroutedCallbackWarnsOnce: a callback of an IdP the route lacks
// but the config has on another route, by the same protocol, is one that
// Caddy's routes send here: the config_changed page as for a reload, and
// one WARN naming the IdP however often it comes. An IdP the config has
// by another protocol, one it lacks, or a route that knows no config is
// the reload's page only, without the WARN.
func TestMisroutedCallbackWarnsOnce(t *testing.T) {
	const msg = "a callback of an IdP this sso route does not have reached it"
	for _, tc := range []struct {
		name       string
		configured map[string]*IdP
		warns      int
	}{
		{"an IdP of another route, same protocol", map[string]*IdP{"other": {Name: "other", Protocol: idp.ProtocolOIDC}}, 1},
		{"an IdP of the config by another protocol", map[string]*IdP{"other": {Name: "other", Protocol: idp.ProtocolSAML}}, 0},
		{"an IdP the config lacks", map[string]*IdP{"corp": {Name: "corp", Protocol: idp.ProtocolOIDC}}, 0},
		{"no config known", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			core, logs := observer.New(zapcore.InfoLevel)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.New(core), Configured: tc.configured, IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
			rt.Default = rt.IdPs[0]
			for range 2 {
				r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/other/callback?state=K&code=c", nil)
				r.Header.Set("Accept", "text/html")
				r = idp.WithOrigin(r, dutyOrigin().Site)
				pe, ok := AsPageError(rt.ServeEndpoint(httptest.NewRecorder(), r, world.run, dutyOrigin(), nil, nil))
				if !ok || pe.Code != CodeSignInConfigChanged || pe.Status != http.StatusNotFound {
					t.Fatalf("answer %v, want the %s page (404)", pe, CodeSignInConfigChanged)
				}
			}
			lines := logs.FilterMessageSnippet(msg).All()
			if len(lines) != tc.warns {
				t.Fatalf("%d WARN lines %q after two callbacks, want %d", len(lines), msg, tc.warns)
			}
			if tc.warns > 0 && (lines[0].Level != zapcore.WarnLevel || lines[0].ContextMap()["idp"] != "other") {
				t.Errorf("the line: %v %v, want a WARN naming IdP other", lines[0].Level, lines[0].ContextMap())
			}
		})
	}
}

// TestConfigChangedReturnsToTheSAMLFlowsPage: the IdP's POST to the ACS of
// a SAML IdP the route no longer has finds the flow cookie by the form's
// RelayState, and the page's sign-in comes back to the page that cookie
// names; a RelayState only in the URL's query, which no IdP's POST carries
// there, finds nothing, and the sign-in comes back home.
func TestConfigChangedReturnsToTheSAMLFlowsPage(t *testing.T) {
	for _, tc := range []struct {
		name, target, body, wantReturn string
	}{
		{"RelayState in the form", "https://app.example.com/.sso/saml/gone/acs", "SAMLResponse=x&RelayState=K", "/reports?y=1"},
		{"RelayState in the query only", "https://app.example.com/.sso/saml/gone/acs?RelayState=K", "SAMLResponse=x", "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
			rt.Default = rt.IdPs[0]
			r := httptest.NewRequest(http.MethodPost, tc.target, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Accept", "text/html")
			r = idp.WithOrigin(r, dutyOrigin().Site)
			begun := httptest.NewRecorder()
			if err := world.run.Flows.Save(begun, r, idp.SignInFlowID(idp.ProtocolSAML, "gone", "K"), idp.FlowReturn{ReturnTo: "/reports?y=1"}, idp.DefaultLoginTimeout, http.SameSiteNoneMode); err != nil {
				t.Fatal(err)
			}
			for _, c := range begun.Result().Cookies() {
				r.AddCookie(c)
			}
			pe, ok := AsPageError(rt.ServeEndpoint(httptest.NewRecorder(), r, world.run, dutyOrigin(), nil, nil))
			if !ok || pe.Code != CodeSignInConfigChanged || pe.Status != http.StatusNotFound {
				t.Fatalf("answer %v, want the %s page (404)", pe, CodeSignInConfigChanged)
			}
			if want := "/.sso/login?return_to=" + url.QueryEscape(tc.wantReturn); pe.Links[0].Href != want {
				t.Errorf("sign-in link %q, want %q", pe.Links[0].Href, want)
			}
		})
	}
}

// TestReauthWithChooserAndAnotherIdPsSession: reauth=1 on a chooser route
// re-authenticates at the IdP of the browser's session only when that is
// one of the route's; a session of another route's IdP gets the chooser.
func TestReauthWithChooserAndAnotherIdPsSession(t *testing.T) {
	world := newDutyWorld(t)
	other := signInAgain(t, world, "elsewhere")
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), Chooser: true,
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}, {Name: "work", Protocol: idp.ProtocolOIDC}}}
	rt.Default = rt.IdPs[0]
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login?reauth=1&return_to=%2Fa", nil)
	r.Header.Set("Accept", "text/html")
	w := httptest.NewRecorder()
	if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{other}, nil); err != nil || w.Code != http.StatusOK {
		t.Fatalf("answer %d, %v; want the chooser (200)", w.Code, err)
	}
	if !strings.Contains(w.Body.String(), "idp=work") {
		t.Errorf("the chooser does not list the route's IdPs: %s", w.Body)
	}
}

// TestJWKSOnlyWithASigner: a route that signs no identity token has no
// JWKS endpoint, whatever the method: 404, not 405 with an Allow.
func TestJWKSOnlyWithASigner(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		w := httptest.NewRecorder()
		err := rt.ServeEndpoint(w, httptest.NewRequest(method, "https://app.example.com/.sso/jwks.json", nil), world.run, dutyOrigin(), nil, nil)
		var he *Error
		if !errors.As(err, &he) || he.Status != http.StatusNotFound || w.Header().Get("Allow") != "" {
			t.Errorf("%s jwks.json: %v, Allow %q; want 404", method, err, w.Header().Get("Allow"))
		}
	}
}

// TestJWKSOfAnotherRoutesSigner: a route that signs nothing itself, in a
// config where another route does, answers jwks.json as every endpoint of
// its own: the keys to a GET, 405 with its Allow to a POST.
func TestJWKSOfAnotherRoutesSigner(t *testing.T) {
	world := newDutyWorld(t)
	keys := new(IdentityKeys)
	keys.Add(NewIdentitySigner(SignerConfig{}))
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}, Keys: keys}
	w := httptest.NewRecorder()
	if err := rt.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/jwks.json", nil), world.run, dutyOrigin(), nil, nil); err != nil ||
		w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"keys":[{`) {
		t.Fatalf("GET jwks.json: %d %v %.200s; want the other route's keys", w.Code, err, w.Body)
	}
	w = httptest.NewRecorder()
	err := rt.ServeEndpoint(w, httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/jwks.json", nil), world.run, dutyOrigin(), nil, nil)
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST jwks.json: %v, Allow %q; want 405 with Allow GET, HEAD", err, w.Header().Get("Allow"))
	}
}

// TestWhoamiGroupsNeverNull: a user without groups is "groups": [] in
// whoami, which front-end code iterates, not null.
func TestWhoamiGroupsNeverNull(t *testing.T) {
	world := newDutyWorld(t) // the generic mapping sends ada no groups
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/whoami", nil)
	r.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil); err != nil || w.Code != http.StatusOK {
		t.Fatalf("whoami: %d, %v", w.Code, err)
	}
	if !strings.Contains(w.Body.String(), `"groups":[]`) {
		t.Errorf("whoami %s, want \"groups\":[]", w.Body)
	}
}

// returnToLogoutProvider records the return path the sign-out hands the
// IdP's logout, which builds a URL on this site from it.
type returnToLogoutProvider struct {
	logoutProvider
	returnTo *string
}

func (p *returnToLogoutProvider) Logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) (bool, error) {
	*p.returnTo = returnTo
	return p.logoutProvider.Logout(w, r, base, info, returnTo)
}

// TestSignOutReturnStaysOnTheSite: the return_to of a sign-out reaches the
// IdP's logout, and the confirmation page's form, only as a path on this
// site: the OIDC logout puts it after the site's scheme and host.
func TestSignOutReturnStaysOnTheSite(t *testing.T) {
	for _, returnTo := range []string{"https://evil.example/x", "//evil.example/x", "@evil.example/x"} {
		t.Run(returnTo, func(t *testing.T) {
			world := newDutyWorld(t)
			var got string
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
				Provider: &returnToLogoutProvider{logoutProvider{name: "corp"}, &got}}}}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", strings.NewReader(url.Values{"return_to": {returnTo}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			w := httptest.NewRecorder()
			if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil); err != nil {
				t.Fatal(err)
			}
			if got != idp.LocalPath(returnTo) || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
				t.Errorf("the IdP's logout was given %q, want the local path %q", got, idp.LocalPath(returnTo))
			}
		})
	}
}

// TestSignOutGoesToTheFirstLiveSessionsIdP: cookies naming a session that
// had ended (expired, still stored) and then a live one go on to the live
// session's IdP logout, the IdP session still open; of two live sessions,
// to the first one's, whose cookie the answer keeps for a second click.
func TestSignOutGoesToTheFirstLiveSessionsIdP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tokens func(world *dutyWorld) []string
	}{
		{"an ended work session, then a live corp one", func(world *dutyWorld) []string {
			return []string{expiredSession(t, world, "work"), world.token}
		}},
		{"a live corp session, then a live work one", func(world *dutyWorld) []string {
			return []string{world.token, signInAgain(t, world, "work")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t) // ada live at corp
			tokens := tc.tokens(world)
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{
				{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &namedLogoutProvider{logoutProvider{name: "corp"}}},
				{Name: "work", Protocol: idp.ProtocolOIDC, Provider: &namedLogoutProvider{logoutProvider{name: "work"}}},
			}}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			w := httptest.NewRecorder()
			if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tokens, nil); err != nil {
				t.Fatal(err)
			}
			kept := ""
			for _, c := range w.Result().Cookies() {
				if c.Name == dutyOrigin().SessionCookie() && c.MaxAge > 0 {
					kept = c.Value
				}
			}
			if got := w.Header().Get("Location"); got != "https://corp.example.com/logout" || kept != world.token {
				t.Errorf("went to %q, kept the corp session's cookie: %v; want corp's logout and its cookie", got, kept == world.token)
			}
		})
	}
}

// TestUnrecordedSignOutClearsTheCookie: a sign-out the store could not
// record still clears the session cookie in the browser.
func TestUnrecordedSignOutClearsTheCookie(t *testing.T) {
	world := newDutyWorld(t)
	if err := world.run.Store.Close(); err != nil {
		t.Fatal(err)
	}
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
		Provider: &logoutProvider{name: "corp"}}}}
	r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	if pe, ok := AsPageError(rt.ServeEndpoint(w, r, world.run, dutyOrigin(), []string{world.token}, nil)); !ok || pe.Name != PageStoreUnavailable {
		t.Fatalf("answer %v, want the store_unavailable page", pe)
	}
	cleared := false
	for _, c := range w.Result().Cookies() {
		cleared = cleared || (c.Name == dutyOrigin().SessionCookie() && c.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("the session cookie is not cleared: Set-Cookie %q", w.Header().Values("Set-Cookie"))
	}
}

// TestPreviousSessionAndReauthUser: the session a sign-in ends is the
// first valid one among the cookies, of whichever IdP, else the first
// cookie's; a refusal names the signed-in user only for a reauth_not_fresh
// refusal, whichever IdP that session is of.
func TestPreviousSessionAndReauthUser(t *testing.T) {
	world := newDutyWorld(t)
	other := signInAgain(t, world, "elsewhere") // not the route's IdP
	ctx := context.Background()
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	for _, tc := range []struct {
		tokens []string
		want   string
	}{
		{[]string{"not-a-session", other}, session.Hash(other)},
		{[]string{"not-a-session"}, session.Hash("not-a-session")},
		{nil, ""},
	} {
		if got, err := rt.previousSession(ctx, world.run, tc.tokens, nil); err != nil || got != tc.want {
			t.Errorf("previousSession(%d cookies) = %q, %v; want %q", len(tc.tokens), got, err, tc.want)
		}
	}
	id, err := world.run.Sessions.Resolve(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code, want string
	}{
		{idp.CodeReauthNotFresh, id.UserID},
		{"id_token_signature", ""},
	} {
		if got := rt.reauthUser(ctx, world.run, &idp.LoginError{Code: tc.code}, []string{other}, nil); got != tc.want {
			t.Errorf("reauthUser(%s) = %q, want %q", tc.code, got, tc.want)
		}
	}
}

// TestPathPrefixAndNameIDFormatBounds: / alone is no path_prefix, and a
// NameID Format longer than 200 bytes is not repeated even when plain.
func TestPathPrefixAndNameIDFormatBounds(t *testing.T) {
	for _, p := range []string{"/", "//", ""} {
		if err := func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("panic: %v", v)
				}
			}()
			if CheckPathPrefix(p) == nil {
				return errors.New("accepted")
			}
			return nil
		}(); err != nil {
			t.Errorf("CheckPathPrefix(%q): %v, want an error", p, err)
		}
	}
	if got := nameIDFormatShown("urn:" + strings.Repeat("a", 197)); got != "(not a plain URI, so not repeated here)" {
		t.Errorf("a 201-byte NameID Format is shown: %.40q", got)
	}
}

// TestCallbackWithTheSessionUnreadable: a callback whose browser comes
// with a session cookie that the store cannot read now is not completed:
// the sign-in would not end that session (its cookie is about to be
// replaced), so the person gets the 503 page and no new session.
func TestCallbackWithTheSessionUnreadable(t *testing.T) {
	world := newDutyWorld(t)
	var fail atomic.Bool
	fail.Store(true)
	db := failingViews{world.run.Store, &fail}
	run := &Runtime{Store: db, Sessions: session.New(db, session.Config{}, nil, nil), SignIn: world.run.SignIn,
		Refusals: world.run.Refusals, Flows: world.run.Flows}
	rt := callbackRoute(t, &callbackProvider{name: "corp", returnTo: "/"}, provision.Rules{JIT: true})
	w, err := callback(t, rt, run, []string{world.token})
	if pe, ok := AsPageError(err); !ok || pe.Status != http.StatusServiceUnavailable {
		t.Fatalf("answer %d, %v; want the 503 page", w.Code, err)
	}
	if c := w.Header().Get("Set-Cookie"); strings.Contains(c, dutyOrigin().SessionCookie()+"=") {
		t.Errorf("a session cookie was set: %q", c)
	}
}

// TestRefusedCallbackNamesTheClient: a refused callback's log line names
// the client as the route's ClientIP says (the trusted proxies' client),
// not the connection's peer.
func TestRefusedCallbackNamesTheClient(t *testing.T) {
	world := newDutyWorld(t)
	core, logs := observer.New(zapcore.WarnLevel)
	world.run.Refusals = &signin.Refusals{Store: world.run.Store, Logger: zap.New(core)}
	rt := callbackRoute(t, &callbackProvider{name: "corp", err: &idp.LoginError{Code: "id_token_signature", Err: errors.New("sig")}}, provision.Rules{JIT: true})
	rt.ClientIP = func(*http.Request) string { return "203.0.113.9" }
	if _, err := callback(t, rt, world.run, nil); err == nil {
		t.Fatal("the callback was not refused")
	}
	lines := logs.FilterMessage("sign-in refused").All()
	if len(lines) != 1 || lines[0].ContextMap()["source"] != "203.0.113.9" {
		t.Errorf("log %v, want one line with source 203.0.113.9", logs.All())
	}
}

// TestChooserFromLoginKeepsTheReturnPath: /login on a chooser route shows
// the chooser, whose sign-in links come back to the return_to asked for.
func TestChooserFromLoginKeepsTheReturnPath(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), Chooser: true,
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}, {Name: "work", Protocol: idp.ProtocolOIDC}}}
	rt.Default = rt.IdPs[0]
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login?return_to=%2Freports", nil)
	r.Header.Set("Accept", "text/html")
	w := httptest.NewRecorder()
	if err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil); err != nil || w.Code != http.StatusOK {
		t.Fatalf("answer %d, %v; want the chooser (200)", w.Code, err)
	}
	if !strings.Contains(w.Body.String(), "return_to=%2freports") && !strings.Contains(w.Body.String(), "return_to=%2Freports") {
		t.Errorf("the chooser's links do not come back to /reports: %s", w.Body)
	}
}
