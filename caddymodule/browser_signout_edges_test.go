package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/crewjam/saml"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// TestBrowserBackAfterSignOut signs out with the button, then presses the
// back button to one of the app's pages, over OIDC and over SAML. The page
// must not come back from the browser's back/forward cache or its HTTP
// cache (a shared computer's next user would read it). Without a
// Cache-Control of the app's own, the gateway marks the page no-store,
// which Chromium restores only while the cookies are unchanged. An app
// may send its own without no-store, which the gateway keeps (Rails'
// default on every dynamic answer is "max-age=0, private,
// must-revalidate"): the sign-out's answer carries Clear-Site-Data:
// "cache", which empties both caches. Either way the browser asks again
// and is sent to sign in, and the IdP's logout chain still completes: the
// next visit asks for the password.
func TestBrowserBackAfterSignOut(t *testing.T) {
	const rails = "max-age=0, private, must-revalidate"
	for _, tc := range []struct {
		name, protocol, cacheControl string
	}{
		{"oidc", "oidc", ""},
		{"saml", "saml", ""},
		{"oidc/app-cache-control-rails", "oidc", rails},
		{"oidc/app-cache-control-no-cache", "oidc", "no-cache"},
		{"saml/app-cache-control-rails", "saml", rails},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := "\thandle /page.html {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n"
			if tc.cacheControl != "" {
				page += "\t\theader Cache-Control \"" + tc.cacheControl + "\"\n"
			}
			page += "\t\trespond \"<!doctype html><title>Page</title><p id=who>{http.auth.user.email}</p>\"\n\t}\n"
			const sites = "%s {\n\tsso test\n%s\thandle {\n\t\treverse_proxy %s\n\t}\n}\n"
			var base, idpPrefix string
			if tc.protocol == "oidc" {
				w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
				w.sites = fmt.Sprintf(sites, w.gw.base, page, w.upstream.hostPort())
				w.start()
				base, idpPrefix = w.gw.base, w.idp.Issuer
			} else {
				w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n")
				w.gw.base = fmt.Sprintf("http://localhost:%d", w.gw.port)
				w.sites = fmt.Sprintf(sites, w.gw.base, page, w.upstream.hostPort())
				w.start()
				w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
				base, idpPrefix = w.gw.base, w.idp.SSOURL()
			}
			ctx := newChromium(t)
			browserSignIn(t, ctx, base+"/dashboard", "ada", "ada-pw")
			if err := chromedp.Do(ctx, chromedp.Navigate(base+"/page.html"), chromedp.WaitVisible(chromedp.ID("who"))); err != nil {
				t.Fatal(err)
			}
			// Another page, so that the page is not the entry right
			// before the sign-out page.
			if err := chromedp.Do(ctx, chromedp.Navigate(base+"/other")); err != nil {
				t.Fatal(err)
			}
			waitForPage(t, ctx, base+"/other")
			clickSignOut(t, ctx, base)
			waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(idpPrefix) })

			backTo(t, ctx, base+"/page.html")
			s := pageAfterBack(ctx, idpPrefix)
			if strings.Contains(s.body, "ada@example.com") || !s.idpAsksForPassword(idpPrefix) {
				t.Errorf("the app's Cache-Control %q: back to the app's page after signing out: at %s, want the IdP's login form:\n%s", tc.cacheControl, s.loc, s.body)
			}
			nextVisitAsksForPassword(t, ctx, base, idpPrefix)
		})
	}
}

// pageAfterBack polls what the tab shows after backTo until it is final:
// the page restored from a cache (signed in: it shows the address), or
// the IdP's login form, complete (a poll may catch the IdP's page, or a
// page on the way to it, partly rendered). A document that still bears
// backTo's mark is the one the tab was leaving. Each look has a deadline
// of its own: a page restored from the back/forward cache fires no load
// event to wait for.
func pageAfterBack(ctx context.Context, idpPrefix string) browserState {
	var s browserState
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		p, err := chromedp.Run(c, chromedp.Evaluate[backLook](`({loc: location.href, body: document.body ? document.body.innerText : "", left: window.`+leftByBack+` === true})`))
		cancel()
		if err != nil || p.Left {
			continue
		}
		s = browserState{loc: p.Location, body: p.Body}
		if strings.Contains(s.body, "@example.com") || s.idpAsksForPassword(idpPrefix) {
			break
		}
	}
	return s
}

// backLook is what the tab shows, read in one evaluation (two could read
// two documents), and whether its document bears backTo's mark.
type backLook struct {
	browsertest.Page
	Left bool `json:"left"`
}

// leftByBack marks the document backTo leaves, so that pageAfterBack can
// tell it from the one the tab goes back to (the IdP's login form is
// both).
const leftByBack = "leftByBack"

// backTo goes back to the latest entry of the tab's history at want, as
// the back button does, marking the document it leaves; a page restored
// from the back/forward cache fires no load event, so it does not wait
// for one.
func backTo(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	h, err := chromedp.Run(ctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	for i := h.CurrentIndex - 1; i >= 0; i-- {
		if h.Entries[i].URL == want {
			id := h.Entries[i].ID
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.`+leftByBack+` = true`)); err != nil {
				t.Fatal(err)
			}
			err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: id})
				return err
			}))
			if err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no entry %s in the tab's history", want)
}

// TestBrowserCachedPageAfterSignOut: the app answers a page as a file
// server does, with Last-Modified and no Cache-Control, which a browser
// may keep and show again without asking. After signing out, typing the
// page's address must lead to the sign-in, not to the copy: the gateway
// marks signed-in pages without a Cache-Control of their own "no-store",
// and other answers "private, no-cache". One with its own keeps it.
func TestBrowserCachedPageAfterSignOut(t *testing.T) {
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf(`%s {
	sso test
	handle /doc.html {
		header Content-Type "text/html; charset=utf-8"
		header Last-Modified "Mon, 01 Jan 2024 00:00:00 GMT"
		respond "<!doctype html><title>Doc</title><p id=secret>salary report for ada</p>"
	}
	handle /logo.png {
		header Cache-Control "public, max-age=3600"
		respond "png"
	}
	handle {
		reverse_proxy %s
	}
}
`, w.gw.base, w.upstream.hostPort())
	w.start()

	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	for path, want := range map[string]string{
		"/doc.html":  ssogateway.PageCacheControl,
		"/logo.png":  "public, max-age=3600",
		"/dashboard": ssogateway.PrivateCacheControl, // reverse_proxy, JSON
	} {
		resp := b.get(w.gw.base + path)
		readBody(t, resp)
		if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: Cache-Control %q, want only %q", path, got, want)
		}
	}

	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/doc.html"), chromedp.WaitVisible(chromedp.ID("secret"))); err != nil {
		t.Fatal(err)
	}
	clickSignOut(t, ctx, w.gw.base)
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.Issuer) })
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/doc.html")); err != nil {
		t.Fatal(err)
	}
	if s := waitFor(t, ctx, "a page", func(s browserState) bool { return s.body != "" }); strings.Contains(s.body, "salary report") {
		t.Errorf("after signing out, the page came from the browser's cache: at %s:\n%s", s.loc, s.body)
	}
}

// TestBrowserStaleSignOutPage: a sign-out page opened before signing in
// (in another tab) still signs out at the IdP when its button is clicked
// later: its form may lead to any of the route's IdPs (CSP form-action),
// not only to the IdP of the session it was opened with.
func TestBrowserStaleSignOutPage(t *testing.T) {
	w := localhostSAMLWorld(t, "", nil)
	tabA := newChromium(t)
	if err := chromedp.Do(tabA, chromedp.Navigate(w.gw.base+"/.sso/logout"), chromedp.WaitVisible(chromedp.ID("submit"))); err != nil {
		t.Fatal(err)
	}
	tabB, cancel := chromedp.NewContext(tabA)
	defer cancel()
	browserSignIn(t, tabB, w.gw.base+"/dashboard", "ada", "ada-pw")

	if err := chromedp.Do(tabA, chromedp.Click(chromedp.ID("submit"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tabA, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.SSOURL()) })
	if n, slo := w.idp.SessionCount(), w.idp.Requests(samltest.PathSLO); n != 0 || slo != 1 {
		t.Errorf("after signing out: %d IdP sessions and %d SLO requests, want 0 and 1", n, slo)
	}
	nextVisitAsksForPassword(t, tabA, w.gw.base, w.idp.SSOURL())
}

// TestBrowserDoubleClickSignOut double-clicks Sign out on a slow network
// (browsertest.DoubleClickSignOut), over OIDC and SAML: the browser drops
// the first answer (on to the IdP's logout) for the second, whose POST
// found the session already ended. That answer must go on to the IdP's
// logout as well, or the IdP's session lives on and the next visit signs
// in without a password. internal/clustertest's TestTwoInstances
// double-clicks with the two POSTs on two instances.
func TestBrowserDoubleClickSignOut(t *testing.T) {
	for _, tc := range []struct {
		protocol string
		start    func(t *testing.T) (base, idpPrefix string)
	}{
		{"oidc", func(t *testing.T) (string, string) { w := localhostOIDCWorld(t); return w.gw.base, w.idp.Issuer }},
		{"saml", func(t *testing.T) (string, string) {
			w := localhostSAMLWorld(t, "", nil)
			return w.gw.base, w.idp.SSOURL()
		}},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			base, idpPrefix := tc.start(t)
			ctx := newChromium(t)
			browserSignIn(t, ctx, base+"/dashboard", "ada", "ada-pw")
			if err := chromedp.Do(ctx, browsertest.DoubleClickSignOut(base)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(idpPrefix) })
			nextVisitAsksForPassword(t, ctx, base, idpPrefix)
		})
	}
}

// TestBrowserSecondClickAfterTheFirstAnswer: an IdP whose single logout
// is HTTP-Redirect only (Entra ID's) is reached by a redirect, and the
// sign-out page stays on screen, its button live, until the IdP's page
// comes (here: held until the second click has reached it). A second
// click then leaves after the first answer arrived: its POST carries the
// cookie that answer kept, and goes on to the IdP's logout too. The first
// answer cleared the cookie, and the second, the one the tab shows, was
// the local "Signed out" page, the IdP's session alive.
func TestBrowserSecondClickAfterTheFirstAnswer(t *testing.T) {
	w := localhostSAMLWorld(t, "", func(s *samltest.Server) { s.SetLogoutBindings(saml.HTTPRedirectBinding) })
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	release := w.idp.Stall(samltest.PathSLO)
	t.Cleanup(release)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/.sso/logout"), chromedp.WaitVisible(chromedp.ID("submit"))); err != nil {
		t.Fatal(err)
	}
	// The second click by the page's own timer: chromedp waits for a
	// navigation in progress, and the tab is in one, to the IdP. 1.5 s is
	// long after the first answer on loopback; were it not, the clicks
	// would be an ordinary double click, which goes to the IdP too.
	const clickTwice = `(() => { const b = document.getElementById("submit"); b.click(); setTimeout(() => b.click(), 1500); return 1 })()`
	if _, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[int](clickTwice)); err != nil {
		t.Fatal(err)
	}
	for click := 1; click <= 2; click++ {
		for deadline := time.Now().Add(15 * time.Second); w.idp.Requests(samltest.PathSLO) < click; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				p, _ := browsertest.Look(ctx)
				t.Fatalf("click %d did not go on to the IdP's logout: the tab is at %s showing:\n%s", click, p.Location, p.Body)
			}
		}
	}
	release()
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.SSOURL()) })
	nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.SSOURL())
}

// TestBrowserPagesLeadOn clicks the way on that the dead-end pages now
// offer: "Signed out" signs in again and comes back, "Unknown sign-in
// method" leads to the sign-in, and "Sign-out refused" (another site's form)
// says the person is still signed in and leads to this site's sign-out page,
// whose button signs out.
func TestBrowserPagesLeadOn(t *testing.T) {
	w := localhostOIDCWorld(t)
	ctx := newChromium(t)
	clickLink := func(text string) {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("li a")))
		if err != nil || got != text {
			t.Fatalf("the page's link reads %q (%v), want %q", got, err, text)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("li a"))); err != nil {
			t.Fatal(err)
		}
	}

	// Signed out already: the button answers "Signed out", whose link
	// signs in and comes back to return_to.
	err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/.sso/logout?return_to=/after"), chromedp.WaitVisible(chromedp.ID("submit")),
		chromedp.Click(chromedp.ID("submit")))
	if err != nil {
		t.Fatal(err)
	}
	waitForText(t, ctx, "You are signed out.")
	clickLink("Sign in again")
	if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitForPage(t, ctx, w.gw.base+"/after")

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/.sso/login?idp=nope")); err != nil {
		t.Fatal(err)
	}
	waitForText(t, ctx, "Unknown sign-in method")
	clickLink("Sign in")
	waitForPage(t, ctx, w.gw.base+"/") // the IdP's session answers at once

	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(rw, `<!doctype html><form id="f" method="post" action="%s/.sso/logout"></form><script>document.getElementById('f').submit()</script>`, w.gw.base)
	}))
	t.Cleanup(evil.Close)
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	waitForText(t, ctx, "you are still signed in")
	clickLink("Sign out")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("submit")), chromedp.Click(chromedp.ID("submit"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.Issuer) })
	nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.Issuer)
}
