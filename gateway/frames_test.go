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
// not the JSON a script gets. In a page of this site, or of the same site,
// its link signs in in the whole window (target=_top) and comes back to
// the page the frame is in, the Referer when it is on this site, else the
// route's home. In another site's page, which never gets the SameSite=Lax
// session cookie, it says the app cannot be shown there, and its link
// opens the frame's own page (its return path, validated: a path of this
// site) in a window of its own (target=_blank, rel=noopener). Either page
// may be framed (it answers a frame), and the 401 carries the
// WWW-Authenticate any 401 of the route does, and no-store.
func TestFrameWithoutSession(t *testing.T) {
	o, err := gateway.BaseOrigin("https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	const (
		signInAgain = "session has ended"
		ownWindow   = "cannot be shown inside another site&#39;s page"
	)
	for _, tc := range []struct {
		name, prefix, path, referer, site, returnTo string
		text                                        string // what the page says
	}{
		{"same-origin frame", "/.sso/", "/widget?refresh=1", "https://app.example.com/dashboard?tab=2", "same-origin", "/dashboard?tab=2", signInAgain},
		{"same-origin frame, no Referer", "/.sso/", "/widget?refresh=1", "", "same-origin", "/", signInAgain},
		{"same-site frame", "/app/.sso/", "/app/widget", "https://portal.example.com/", "same-site", "/app/", signInAgain},
		{"another site's frame", "/.sso/", "/widget?refresh=1", "https://portal.example.net/home", "cross-site", "/widget?refresh=1", ownWindow},
		{"another site's frame, no Referer", "/app/.sso/", "/app/widget", "", "cross-site", "/app/widget", ownWindow},
		{"another site's frame of a callback with an IdP's answer", "/app/.sso/", "/app/.sso/oidc/corp/callback?state=s&code=c", "", "cross-site", "/app/", ownWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &gateway.Route{PathPrefix: tc.prefix, Default: &gateway.IdP{Name: "corp"}}
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com"+tc.path, nil)
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
			name, link, target, attrs := gateway.PageSignInAgain, login, "_top", `target="_top"`
			if tc.text == ownWindow {
				name, link, target, attrs = gateway.PageCrossSiteFrame, tc.returnTo, "_blank", `target="_blank" rel="noopener"`
			}
			if pe.Name != name || pe.Status != http.StatusUnauthorized || !pe.Framed ||
				len(pe.Links) != 1 || pe.Links[0].Href != link || pe.Links[0].Target != target {
				t.Errorf("page %+v, want %s, 401, framed, one link to %s with target %s", pe.Page, name, link, target)
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
			if !strings.Contains(body, attrs) || !strings.Contains(body, tc.text) {
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
