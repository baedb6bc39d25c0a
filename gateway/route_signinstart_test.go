package gateway

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
)

// TestStartSignIn: a navigation without a session begins the sign-in at
// the route's default IdP, returning to the page asked for; a route with
// a chooser shows the chooser instead, whose links go to each IdP's
// sign-in with that return path, and begins none.
func TestStartSignIn(t *testing.T) {
	world := newDutyWorld(t)
	for _, chooser := range []bool{false, true} {
		rt, work, corp := dispatchRoute()
		rt.Chooser = chooser
		r := dutyNavigation("https://app.example.com/reports?q=1")
		w := httptest.NewRecorder()
		status := answerStatus(t, w, rt.StartSignIn(w, r, world.run, dutyOrigin(), nil, nil))
		if !chooser {
			if status != http.StatusFound || len(work.begun) != 1 || work.begun[0].ReturnTo != "/reports?q=1" || len(corp.begun) != 0 {
				t.Errorf("no chooser: answer %d, begun at work %+v, at corp %d; want 302, one sign-in at work returning to /reports?q=1", status, work.begun, len(corp.begun))
			}
			continue
		}
		body := html.UnescapeString(w.Body.String())
		if status != http.StatusOK || len(work.begun)+len(corp.begun) != 0 ||
			!strings.Contains(body, "/.sso/login?idp=work&return_to=%2Freports%3Fq%3D1") ||
			!strings.Contains(body, "/.sso/login?idp=corp&return_to=%2Freports%3Fq%3D1") {
			t.Errorf("chooser: answer %d, sign-ins begun %d; want 200, none, links to both IdPs:\n%s", status, len(work.begun)+len(corp.begun), body)
		}
	}
}

// TestLoginInAFrame: the login URL loaded in a frame (a proxy's redirect
// of one) begins no sign-in (IdPs refuse to be framed): it answers a
// framed page, not a script's JSON. In a page of this site, the
// sign_in_again page, whose link signs in in the whole window at the IdP
// asked for and returns to the page the frame is in (the Referer on this
// site); in another site's page, which never gets the session cookie, the
// cross_site_frame page, whose link opens the page the sign-in was for
// in a window of its own.
func TestLoginInAFrame(t *testing.T) {
	world := newDutyWorld(t)
	for _, tc := range []struct {
		site, referer, name, link, target string
	}{
		{"same-origin", "https://app.example.com/dashboard", PageSignInAgain, "/.sso/login?idp=corp&return_to=%2Fdashboard", "_top"},
		{"cross-site", "https://portal.example.net/", PageCrossSiteFrame, "/widget", "_blank"},
	} {
		t.Run(tc.site, func(t *testing.T) {
			rt, work, corp := dispatchRoute()
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login?idp=corp&return_to=%2Fwidget", nil)
			for k, v := range map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe",
				"Sec-Fetch-Site": tc.site, "Referer": tc.referer} {
				r.Header.Set(k, v)
			}
			r = idp.WithOrigin(r, dutyOrigin().Site)
			w := httptest.NewRecorder()
			err := rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil)
			pe, ok := AsPageError(err)
			if !ok {
				t.Fatalf("a frame's login: %v, answer %d %s; want the %s page", err, w.Code, w.Body, tc.name)
			}
			if pe.Name != tc.name || pe.Status != http.StatusUnauthorized || !pe.Framed ||
				len(pe.Links) != 1 || pe.Links[0].Href != tc.link || pe.Links[0].Target != tc.target {
				t.Errorf("page %+v, want %s, 401, framed, one link to %s with target %s", pe.Page, tc.name, tc.link, tc.target)
			}
			if n := len(work.begun) + len(corp.begun); n != 0 {
				t.Errorf("%d sign-ins begun in a frame", n)
			}
		})
	}
}

// flowSavingProvider begins a sign-in as the providers do: a flow cookie
// of the real kind carries its return path (idp.FlowReturn beside a
// provider's fields), so a path too long for it is ErrFlowTooLarge.
type flowSavingProvider struct {
	*requestProvider
	flows *idp.FlowCookies
}

func (p flowSavingProvider) Begin(w http.ResponseWriter, r *http.Request, base string, req idp.SignInRequest) error {
	fl := struct {
		Nonce, Verifier string
		idp.FlowReturn
	}{strings.Repeat("n", 26), strings.Repeat("v", 43), idp.FlowReturn{ReturnTo: req.ReturnTo}}
	if err := p.flows.Save(w, r, "oidc/work/state", &fl, time.Minute, http.SameSiteLaxMode); err != nil {
		return err
	}
	return p.requestProvider.Begin(w, r, base, req)
}

// TestSignInReturnPathTooLong: a deep link comes back whole as long as the
// flow cookie holds it, its query's & < > costing a byte each (not JSON's
// six-byte HTML escapes). One too long for the cookie, or for a return
// path at all (idp.MaxLocalPath), does not fail the sign-in: it comes back
// to the page without its query, else to the route's home, never to a
// "/" outside a route under /app/, and the log says so once per IdP a
// minute.
func TestSignInReturnPathTooLong(t *testing.T) {
	world := newDutyWorld(t)
	query := func(n int) string { return strings.Repeat("filter=a<b&", n/11) }
	for _, tc := range []struct {
		name, prefix, asked, want string
	}{
		{"a 2.5 KB deep link", "/.sso/", "/reports?" + query(2500), "/reports?" + query(2500)},
		{"a query too long for the flow cookie", "/.sso/", "/reports?" + query(3000), "/reports"},
		{"a link longer than any return path", "/.sso/", "/reports?" + query(6000), "/reports"},
		{"a link as long as a return path can be", "/.sso/", "/reports?" + strings.Repeat("q", idp.MaxLocalPath-len("/reports?")), "/reports"},
		{"a path too long for the flow cookie", "/.sso/", "/" + strings.Repeat("a", 3000) + "?q=1", "/"},
		{"a fragment too long for the flow cookie", "/.sso/", "/reports#" + strings.Repeat("f", 3000), "/reports"},
		{"under /app/: a 2.5 KB deep link", "/app/.sso/", "/app/reports?" + query(2500), "/app/reports?" + query(2500)},
		{"under /app/: a query too long", "/app/.sso/", "/app/reports?" + query(3000), "/app/reports"},
		{"under /app/: a path too long", "/app/.sso/", "/app/" + strings.Repeat("a", 3000), "/app/"},
		{"under /app/: a link longer than any return path", "/app/.sso/", "/app/" + strings.Repeat("a", 6000), "/app/"},
		{"under /app/: the site's root with a query too long", "/app/.sso/", "/?" + query(3000), "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, work, _ := dispatchRoute()
			core, logs := observer.New(zapcore.InfoLevel)
			rt.PathPrefix, rt.Logger = tc.prefix, zap.New(core)
			rt.IdPs[0].Provider = flowSavingProvider{work, world.run.Flows}
			r := dutyNavigation("https://app.example.com" + tc.prefix + "login?idp=work&return_to=" + url.QueryEscape(tc.asked))
			w := httptest.NewRecorder()
			status := answerStatus(t, w, rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil))
			if status != http.StatusFound || w.Header().Get("Location") != "https://idp.example.com/authorize" {
				t.Fatalf("answer %d, Location %q; want 302 to the IdP", status, w.Header().Get("Location"))
			}
			if n := len(work.begun); n != 1 || work.begun[0].ReturnTo != tc.want {
				t.Errorf("a %d-byte link: sign-ins begun %.80v; want one returning to %.80q", len(tc.asked), work.begun, tc.want)
			}
			const msg = "the page asked for is too long to come back to after sign-in"
			lines := logs.FilterMessageSnippet(msg).All()
			cut, want := tc.want != tc.asked, 0
			if cut {
				want = 1
			}
			if len(lines) != want {
				t.Errorf("%d INFO lines %q, want one only when the link is cut (%v)", len(lines), msg, cut)
			} else if cut && (lines[0].ContextMap()["return_to"] != tc.want || lines[0].ContextMap()["asked_length"] != int64(len(tc.asked))) {
				t.Errorf("the line says %v", lines[0].ContextMap())
			}
		})
	}
}

// TestShortReturnLoggedOncePerIdP: the INFO line of a sign-in that comes
// back to a shorter page is kept to one per IdP a minute: a second at the
// same IdP is not logged, one at another IdP is.
func TestShortReturnLoggedOncePerIdP(t *testing.T) {
	world := newDutyWorld(t)
	rt, _, _ := dispatchRoute()
	core, logs := observer.New(zapcore.InfoLevel)
	rt.Logger = zap.New(core)
	asked := "/reports?" + strings.Repeat("q", idp.MaxLocalPath)
	for _, name := range []string{"work", "work", "corp"} {
		r := dutyNavigation("https://app.example.com/.sso/login?idp=" + name + "&return_to=" + url.QueryEscape(asked))
		w := httptest.NewRecorder()
		if status := answerStatus(t, w, rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil)); status != http.StatusFound {
			t.Fatalf("sign-in at %s: %d, want 302", name, status)
		}
	}
	var idps []string
	for _, l := range logs.FilterMessageSnippet("too long to come back to after sign-in").All() {
		idps = append(idps, l.ContextMap()["idp"].(string))
	}
	if want := []string{"work", "corp"}; !slices.Equal(idps, want) {
		t.Errorf("INFO lines for IdPs %q, want %q", idps, want)
	}
}

// tooLargeProvider is an IdP whose flow cookie never fits, whatever the
// return path: it notes each one tried, and after ten answers another
// error, so that a sign-in that kept trying ends.
type tooLargeProvider struct {
	*requestProvider
}

func (p tooLargeProvider) Begin(w http.ResponseWriter, r *http.Request, base string, req idp.SignInRequest) error {
	p.begun = append(p.begun, req)
	if len(p.begun) > 10 {
		return errors.New("tried more than ten return paths")
	}
	return idp.ErrFlowTooLarge
}

// TestSignInFlowTooLargeForEveryReturnPath: when even the route's home
// does not fit the flow cookie, the sign-in tries the link, its page and
// the home once each and fails, not trying the home again and again,
// nor logging that it comes back to a shorter page.
func TestSignInFlowTooLargeForEveryReturnPath(t *testing.T) {
	world := newDutyWorld(t)
	rt, work, _ := dispatchRoute()
	core, logs := observer.New(zapcore.InfoLevel)
	rt.Logger = zap.New(core)
	rt.IdPs[0].Provider = tooLargeProvider{work}
	r := dutyNavigation("https://app.example.com/.sso/login?idp=work&return_to=" + url.QueryEscape("/reports?q=1"))
	err := rt.ServeEndpoint(httptest.NewRecorder(), r, world.run, dutyOrigin(), nil, nil)
	var tried []string
	for _, req := range work.begun {
		tried = append(tried, req.ReturnTo)
	}
	if want := []string{"/reports?q=1", "/reports", "/"}; !slices.Equal(tried, want) {
		t.Errorf("return paths tried %q, want %q", tried, want)
	}
	if err == nil {
		t.Error("the sign-in answered as begun, want its failure")
	}
	if lines := logs.FilterMessageSnippet("too long to come back to after sign-in").All(); len(lines) != 0 {
		t.Errorf("a failed sign-in logged that it comes back to a shorter page: %v", lines[0].ContextMap())
	}
}

// TestSignInCarriesTheBrowsersSession: a sign-in at an IdP that posts its
// answer (SAML: the session cookie, SameSite=Lax, does not come along)
// carries the session the browser comes with in a flow cookie, so that
// the new sign-in ends it; when no cookie's session resolves (expired,
// perhaps still stored), the first cookie is carried all the same. Inside
// a protected site whose sso took the cookies and admitted the request,
// the outer session is carried; with neither, nothing is.
func TestSignInCarriesTheBrowsersSession(t *testing.T) {
	world := newDutyWorld(t)
	outer, err := world.run.Sessions.Resolve(context.Background(), world.token)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tokens  []string
		outer   *session.Identity
		carried bool
	}{
		{"a live session", []string{world.token}, nil, true},
		{"a cookie whose session does not resolve", []string{strings.Repeat("A", 43)}, nil, true},
		{"an outer session", nil, outer, true},
		{"no session at all", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, _, corp := dispatchRoute()
			r := dutyNavigation("https://app.example.com/.sso/login?idp=corp&return_to=%2Fa")
			w := httptest.NewRecorder()
			status := answerStatus(t, w, rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tc.tokens, tc.outer))
			flow := world.run.Flows.CookieName(r, previousSessionFlow)
			var carried bool
			for _, c := range w.Result().Cookies() {
				carried = carried || c.Name == flow && c.Value != ""
			}
			if status != http.StatusFound || len(corp.begun) != 1 || carried != tc.carried {
				t.Errorf("answer %d, sign-ins begun %d, cookies %v; want 302, one, and the %s flow cookie carried = %v", status, len(corp.begun), w.Result().Cookies(), flow, tc.carried)
			}
		})
	}
}

// dutyNavigation is a browser's top-level navigation to target on the
// duty world's site, as the sso directive receives it.
func dutyNavigation(target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	return idp.WithOrigin(r, dutyOrigin().Site)
}
