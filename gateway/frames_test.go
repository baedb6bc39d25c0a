package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestNavigationDestinations: a navigation starts a sign-in unless it
// loads a frame, of this site's pages or another's (IdPs refuse to be
// framed). A service worker that sends a navigation on (a pass-through
// worker's fetch(e.request)) marks it "empty", from another site's link
// too: that is the window's navigation, whose redirect the browser follows.
func TestNavigationDestinations(t *testing.T) {
	for _, tc := range []struct {
		name             string
		mode, dest, site string
		want             bool
	}{
		{"address bar", "navigate", "document", "none", true},
		{"link from another site", "navigate", "document", "cross-site", true},
		{"service worker, same origin", "navigate", "empty", "same-origin", true},
		{"service worker, link from another site", "navigate", "empty", "cross-site", true},
		{"no fetch metadata", "", "", "", true},
		{"same-origin iframe", "navigate", "iframe", "same-origin", false},
		{"same-site iframe", "navigate", "iframe", "same-site", false},
		{"cross-site iframe", "navigate", "iframe", "cross-site", false},
		{"frame", "navigate", "frame", "same-origin", false},
		{"embed", "navigate", "embed", "same-origin", false},
		{"object", "navigate", "object", "cross-site", false},
		{"fenced frame", "navigate", "fencedframe", "same-origin", false},
		{"image", "no-cors", "image", "same-origin", false},
		{"fetch", "cors", "empty", "same-origin", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports?q=1", nil)
			r.Header.Set("Accept", "text/html")
			for name, v := range map[string]string{"Sec-Fetch-Mode": tc.mode, "Sec-Fetch-Dest": tc.dest, "Sec-Fetch-Site": tc.site} {
				if v != "" {
					r.Header.Set(name, v)
				}
			}
			if got := gateway.IsNavigation(r); got != tc.want {
				t.Errorf("IsNavigation = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFrameWithoutSession: a frame without a session gets a 401 page,
// not the JSON a script gets: its link signs in in the whole window
// (target=_top) and comes back to the page the frame is in, the Referer
// when it is on this site, else the route's home. The page may be framed
// (it answers a frame), and the 401 carries the WWW-Authenticate any 401
// of the route does, and no-store.
func TestFrameWithoutSession(t *testing.T) {
	o, err := gateway.BaseOrigin("https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, prefix, referer, site, returnTo string
	}{
		{"same-origin frame", "/.sso/", "https://app.example.com/dashboard?tab=2", "same-origin", "/dashboard?tab=2"},
		{"same-origin frame, no Referer", "/.sso/", "", "same-origin", "/"},
		{"another site's frame", "/.sso/", "https://portal.example.net/home", "cross-site", "/"},
		{"same-site frame", "/app/.sso/", "https://portal.example.com/", "same-site", "/app/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &gateway.Route{PathPrefix: tc.prefix, Default: &gateway.IdP{Name: "corp"}}
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/widget?refresh=1", nil)
			r.Header.Set("Accept", "text/html")
			r.Header.Set("Sec-Fetch-Mode", "navigate")
			r.Header.Set("Sec-Fetch-Dest", "iframe")
			r.Header.Set("Sec-Fetch-Site", tc.site)
			if tc.referer != "" {
				r.Header.Set("Referer", tc.referer)
			}
			w := httptest.NewRecorder()
			pe, ok := gateway.AsPageError(rt.Unauthorized(w, r, o))
			if !ok {
				t.Fatalf("a frame without a session: no page, the answer is %d %s", w.Code, w.Body)
			}
			login := tc.prefix + "login?return_to=" + url.QueryEscape(tc.returnTo)
			if pe.Name != gateway.PageSignInAgain || pe.Status != http.StatusUnauthorized || !pe.Framed ||
				len(pe.Links) != 1 || pe.Links[0].Href != login || pe.Links[0].Target != "_top" {
				t.Errorf("page %+v, want sign_in_again, 401, framed, one link to %s with target _top", pe.Page, login)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != `SSO realm="corp", login="`+login+`"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			page := httptest.NewRecorder()
			page.Header().Set("WWW-Authenticate", w.Header().Get("WWW-Authenticate"))
			if err := pe.Write(page); err != nil {
				t.Fatal(err)
			}
			body, h := page.Body.String(), page.Header()
			if page.Code != http.StatusUnauthorized || h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Errorf("answer %d %v", page.Code, h)
			}
			if !strings.Contains(body, `target="_top"`) || !strings.Contains(body, "session has ended") {
				t.Errorf("body:\n%s", body)
			}
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors *") || !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP %q: the page must show in the frame it answers, and load nothing", csp)
			}
		})
	}
	// A form a person submitted keeps its page, which may not be framed.
	rt := &gateway.Route{PathPrefix: "/.sso/", Default: &gateway.IdP{Name: "corp"}}
	r := httptest.NewRequest(http.MethodPost, "https://app.example.com/save", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	r.Header.Set("Referer", "https://app.example.com/edit")
	pe, ok := gateway.AsPageError(rt.Unauthorized(httptest.NewRecorder(), r, o))
	if !ok || pe.Framed || pe.Links[0].Target != "" || pe.Links[0].Href != "/.sso/login?return_to=%2Fedit" {
		t.Errorf("a form's sign_in_again page: %+v", pe)
	}
}
