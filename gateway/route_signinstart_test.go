package gateway

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports?q=1", nil)
		r.Header.Set("Accept", "text/html")
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		r.Header.Set("Sec-Fetch-Dest", "document")
		r = idp.WithOrigin(r, dutyOrigin().Site)
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

// flowTooLargeProvider refuses a sign-in whose return path does not fit
// in its flow cookie: any but /.
type flowTooLargeProvider struct{ *requestProvider }

func (p flowTooLargeProvider) Begin(w http.ResponseWriter, r *http.Request, base string, req idp.SignInRequest) error {
	if req.ReturnTo != "/" {
		p.begun = append(p.begun, req)
		return idp.ErrFlowTooLarge
	}
	return p.requestProvider.Begin(w, r, base, req)
}

// TestSignInReturnPathTooLong: a return path too long for the flow cookie
// does not fail the sign-in: it begins again, returning to / (a redirect
// to the IdP, not an error page).
func TestSignInReturnPathTooLong(t *testing.T) {
	world := newDutyWorld(t)
	rt, work, _ := dispatchRoute()
	rt.IdPs[0].Provider = flowTooLargeProvider{work}
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login?idp=work&return_to=%2F"+strings.Repeat("%22", 2000), nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	r = idp.WithOrigin(r, dutyOrigin().Site)
	w := httptest.NewRecorder()
	status := answerStatus(t, w, rt.ServeEndpoint(w, r, world.run, dutyOrigin(), nil, nil))
	if status != http.StatusFound || w.Header().Get("Location") != "https://idp.example.com/authorize" {
		t.Errorf("answer %d, Location %q; want 302 to the IdP", status, w.Header().Get("Location"))
	}
	if n := len(work.begun); n == 0 || work.begun[n-1].ReturnTo != "/" {
		t.Errorf("sign-ins begun %+v; the last must return to /", work.begun)
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
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login?idp=corp&return_to=%2Fa", nil)
			r.Header.Set("Accept", "text/html")
			r.Header.Set("Sec-Fetch-Mode", "navigate")
			r.Header.Set("Sec-Fetch-Dest", "document")
			r = idp.WithOrigin(r, dutyOrigin().Site)
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
