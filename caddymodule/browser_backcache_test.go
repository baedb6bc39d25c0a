package caddymodule_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// TestBrowserBackAfterSignOutAppCacheControl is TestBrowserBackAfterSignOut
// for an app that sends its own Cache-Control on pages without no-store,
// which the gateway keeps (Rails' default on every dynamic answer is
// "max-age=0, private, must-revalidate"): such a page goes into the
// back/forward cache and the HTTP cache, and the back button after signing
// out would show it, the previous person's, from there. The sign-out's
// answer carries Clear-Site-Data: "cache", which empties both, so the
// browser asks again and is sent to sign in. Over OIDC (the sign-out page
// posts on to the IdP) and over SAML (a redirect to the IdP's SLO): the
// IdP's logout chain still completes, and the next visit asks for the
// password.
func TestBrowserBackAfterSignOutAppCacheControl(t *testing.T) {
	const sites = "%s {\n\tsso test\n\thandle /page.html {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n\t\theader Cache-Control \"%s\"\n" +
		"\t\trespond \"<!doctype html><title>Page</title><p id=who>{http.auth.user.email}</p>\"\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}\n}\n"
	for _, tc := range []struct {
		name, cacheControl string
		start              func(t *testing.T, cacheControl string) (base, idpPrefix string)
	}{
		{"oidc/rails", "max-age=0, private, must-revalidate", func(t *testing.T, cc string) (string, string) {
			w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
			w.sites = fmt.Sprintf(sites, w.gw.base, cc, w.upstream.hostPort())
			w.start()
			return w.gw.base, w.idp.Issuer
		}},
		{"oidc/no-cache", "no-cache", func(t *testing.T, cc string) (string, string) {
			w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
			w.sites = fmt.Sprintf(sites, w.gw.base, cc, w.upstream.hostPort())
			w.start()
			return w.gw.base, w.idp.Issuer
		}},
		{"saml/rails", "max-age=0, private, must-revalidate", func(t *testing.T, cc string) (string, string) {
			w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n")
			w.gw.base = fmt.Sprintf("http://localhost:%d", w.gw.port)
			w.sites = fmt.Sprintf(sites, w.gw.base, cc, w.upstream.hostPort())
			w.start()
			w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
			return w.gw.base, w.idp.SSOURL()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, idpPrefix := tc.start(t, tc.cacheControl)
			ctx := newChromium(t)
			browserSignIn(t, ctx, base+"/dashboard", "ada", "ada-pw")
			if err := chromedp.Do(ctx, chromedp.Navigate(base+"/page.html"), chromedp.WaitVisible(chromedp.ID("who"))); err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(base+"/other")); err != nil {
				t.Fatal(err)
			}
			waitForPage(t, ctx, base+"/other")
			clickSignOut(t, ctx, base)
			waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(idpPrefix) })

			backTo(t, ctx, base+"/page.html")
			s := pageAfterBack(ctx, base+"/page.html")
			if strings.Contains(s.body, "ada@example.com") || !s.idpAsksForPassword(idpPrefix) {
				t.Errorf("Cache-Control %q of the app's own: back to the app's page after signing out: at %s, want the IdP's login form:\n%s", tc.cacheControl, s.loc, s.body)
			}
			// The IdP's session ended too: the sign-out's chain completed.
			nextVisitAsksForPassword(t, ctx, base, idpPrefix)
		})
	}
}

// pageAfterBack polls what the tab shows after going back to want: the
// page restored from a cache (still at want, signed in), or where the
// browser was sent instead. Each look has a deadline of its own: a page
// restored from the back/forward cache fires no load event to wait for.
func pageAfterBack(ctx context.Context, want string) browserState {
	var s browserState
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		s.loc, _ = chromedp.Run(c, chromedp.Evaluate[string](`location.href`))
		s.body, _ = chromedp.Run(c, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		cancel()
		if s.body != "" && (strings.Contains(s.body, "@example.com") || s.loc != want) {
			break
		}
	}
	return s
}
