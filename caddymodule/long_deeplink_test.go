package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// deepLink is a deep link under prefix whose query is about n bytes of
// filters (a saved search, a dashboard's: Kibana and Grafana URLs are
// often this long), every one with an &, which JSON's HTML escaping would
// make six bytes in the flow cookie.
func deepLink(prefix string, n int) string {
	return prefix + "/reports?" + strings.Repeat("filter=status:open&", n/19) + "year=2026"
}

// appSites is a site whose sso route is mounted under /app/ (path_prefix
// /app/.sso/), the rest of the site another handler's 404.
func appSites(base, upstream string) string {
	return fmt.Sprintf("%s {\n\thandle_path /app/* {\n\t\tsso test {\n\t\t\tpath_prefix /app/.sso/\n\t\t}\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\trespond \"not the app\" 404\n\t}\n}\n",
		base, upstream)
}

// TestLongDeepLinkSurvivesSignIn: README, "Requests without a session": a
// navigation is sent to sign in and comes back to the page it asked for,
// a 2.5 KB deep link whole, with OIDC and SAML alike (each carries the
// return path in a flow cookie of its own shape), on the default path
// prefix and on a route under /app/. A link too long for the flow cookie
// comes back to its page without the query, on the route, never to "/"
// outside it.
func TestLongDeepLinkSurvivesSignIn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol string
		app      bool // the route under /app/
		query    int  // the query's length
		cut      bool // too long: back to the page without its query
	}{
		{"oidc, a 2.5 KB link", "oidc", false, 2500, false},
		{"oidc under /app/, a 2.5 KB link", "oidc", true, 2500, false},
		{"oidc under /app/, a 3.5 KB link", "oidc", true, 3500, true},
		{"saml, a 2.5 KB link", "saml", false, 2500, false},
		{"saml under /app/, a 2.5 KB link", "saml", true, 2500, false},
		{"saml, a 3.5 KB link", "saml", false, 3500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := ""
			if tc.app {
				prefix = "/app"
			}
			deep := deepLink(prefix, tc.query)
			want := deep
			if tc.cut {
				want = prefix + "/reports"
			}
			var (
				at, body string // where the browser ends, what it shows
				status   int
			)
			switch tc.protocol {
			case "oidc":
				w := newOIDCWorld(t, "\t\t\tjit\n")
				if tc.app {
					w.idp.RegisterClient(oidctest.Client{ID: caddytest.ClientID, Secret: caddytest.ClientSecret,
						RedirectURIs: []string{w.gw.base + "/app/.sso/oidc/test/callback"}})
					w.sites = appSites(w.gw.base, w.upstream.hostPort())
				}
				w.start()
				resp := newBrowser(t).signIn(w.gw.base+deep, "ada", "ada-pw")
				at, status, body = resp.Request.URL.RequestURI(), resp.StatusCode, readBody(t, resp)
			case "saml":
				w := newSAMLWorld(t, "\t\t\tjit\n")
				metadata := w.spEntityID()
				if tc.app {
					w.sites = appSites(w.gw.base, w.upstream.hostPort())
					metadata = w.gw.base + "/app/.sso/saml/test/metadata"
				}
				w.gw.start(w.caddyfile())
				resp, err := http.Get(metadata)
				if err != nil {
					t.Fatal(err)
				}
				if md := readBody(t, resp); resp.StatusCode != http.StatusOK {
					t.Fatalf("SP metadata: %s %.300s", resp.Status, md)
				} else if err := w.idp.RegisterServiceProvider([]byte(md)); err != nil {
					t.Fatal(err)
				}
				w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
				p := newBrowser(t).samlSignIn(w.gw.base+deep, "ada", "ada-pw")
				at, status, body = p.URL.RequestURI(), p.Status, p.Body
			}
			if at != want || status != http.StatusOK || !strings.Contains(body, `"X-Forwarded-User"`) {
				t.Errorf("a %d-byte link: after sign-in the browser is at %.80q…, %d %.80q; want %.80q… served by the app", len(deep), at, status, body, want)
			}
		})
	}
}

// TestSAMLSignOutWithALongReturnPath: a sign-out whose return_to is too
// long for the logout's flow cookie still goes on to the IdP's logout
// (the page after it shortens, as a sign-in's does), where it showed
// "Signed out" and left the IdP's session alive.
func TestSAMLSignOutWithALongReturnPath(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	b.samlSignIn(w.gw.base+"/", "ada", "ada-pw").saw(t)
	long := deepLink("", 3500)
	confirm := b.samlGet(w.gw.base + "/.sso/logout?return_to=" + url.QueryEscape(long))
	action, fields := confirm.form(t)
	if fields.Get("return_to") != long {
		t.Fatalf("the confirmation form carries return_to %.80q…, want the %d-byte path", fields.Get("return_to"), len(long))
	}
	res := b.samlPost(b.noRedirects(), action, fields)
	if res.Status != http.StatusOK || !res.isAutoPost() {
		t.Fatalf("a sign-out returning to a %d-byte path answered %d: %s; want the LogoutRequest form to the IdP", len(long), res.Status, samlShort(res.Body))
	}
	b.samlAutoSubmit(res)
	if n := w.idp.SessionCount(); n != 0 {
		t.Errorf("IdP sessions left after the sign-out: %d", n)
	}
}
