package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/internal/browsertest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
)

// TestBrowserServiceWorkerNavigationFromAnotherSite: an app with a
// pass-through service worker (respondWith(fetch(e.request)), the Workbox
// pattern). After the session ended, a link from another site (webmail,
// the IdP's app dashboard) goes through the worker, which Chromium sends
// as Sec-Fetch-Dest empty, Sec-Fetch-Site cross-site: the person is sent
// to sign in (here signed straight in: the IdP's session is alive), not
// shown a 401's JSON, and comes back to the linked page.
func TestBrowserServiceWorkerNavigationFromAnotherSite(t *testing.T) {
	ctx, base := signedInToAppPage(t, "/app.html",
		"\thandle /app.html {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n"+
			"\t\trespond `<!doctype html><title>App</title><p id=who>{http.auth.user.email}</p><script>navigator.serviceWorker.register('/sw.js')</script>`\n\t}\n"+
			"\thandle /sw.js {\n\t\theader Content-Type \"application/javascript\"\n"+
			"\t\trespond `self.addEventListener('install', e => self.skipWaiting()); self.addEventListener('activate', e => e.waitUntil(clients.claim())); self.addEventListener('fetch', e => e.respondWith(fetch(e.request)));`\n\t}\n")
	waitUntil(t, "the service worker controlling the page", func() bool {
		controlled, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!navigator.serviceWorker.controller`))
		return controlled
	})

	deleteSessionCookie(t, ctx, base) // the session ended
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><a id=go href="%s/reports?q=1">report</a>`, base)
	}))
	defer other.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(other.URL), chromedp.WaitVisible(chromedp.ID("go")), chromedp.Click(chromedp.ID("go"))); err != nil {
		t.Fatal(err)
	}
	// The test IdP's session is alive: it signs the person straight in.
	if body, _ := waitForPage(t, ctx, base+"/reports?q=1"); !strings.Contains(body, "ada@example.com") {
		t.Errorf("a link from another site through the service worker, the session ended: want the linked page signed in again, the person sees\n%s", body)
	}
}

// TestBrowserFrameAfterSessionEnded: a page of the app reloads a
// same-origin frame (a dashboard's widget) after the session ended. The
// frame is not sent to the IdP (real IdPs refuse to be framed, and each
// try would leave a flow cookie): it shows a page that says the session
// ended, and a click on its link takes the whole window to sign in (here
// signed straight in: the IdP's session is alive), which comes back to
// the dashboard, its widget signed in again.
func TestBrowserFrameAfterSessionEnded(t *testing.T) {
	ctx, base := signedInToAppPage(t, "/dash.html",
		"\thandle /dash.html {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n"+
			"\t\trespond `<!doctype html><title>Dash</title><p id=who>{http.auth.user.email}</p><iframe id=f src=/widget style=\"width:600px;height:400px\"></iframe>`\n\t}\n")
	frameText := func() string {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		text, _ := chromedp.Run(c, chromedp.Evaluate[string](`(() => { try { const d = document.getElementById('f').contentDocument; return !d ? 'cross-origin' : d.body ? d.body.innerText : '' } catch (e) { return 'cross-origin: ' + e } })()`))
		return text
	}
	waitUntil(t, "the widget signed in", func() bool { return strings.Contains(frameText(), "ada@example.com") })

	deleteSessionCookie(t, ctx, base) // the session ended
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('f').src = '/widget?refresh=1'`)); err != nil {
		t.Fatal(err)
	}
	var text string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if text = frameText(); strings.Contains(text, "Sign in") || strings.HasPrefix(text, "cross-origin") {
			break
		}
	}
	if !strings.Contains(text, "Your session has ended") {
		t.Fatalf("the frame reloaded after the session ended shows %q, want the page that says the session ended", text)
	}
	if top, _ := chromedp.Run(ctx, chromedp.Location()); top != base+"/dash.html" {
		t.Fatalf("the window left the dashboard: %s", top)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies.Cookies {
		t.Errorf("the frame left a cookie: %s", c.Name)
	}

	// A person's click on the frame's link, at its place on the screen.
	xy, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => {
		const f = document.getElementById('f'), fr = f.getBoundingClientRect();
		const a = f.contentDocument.querySelector('a[target=_top]').getBoundingClientRect();
		return [fr.left + f.clientLeft + a.left + a.width/2, fr.top + f.clientTop + a.top + a.height/2];
	})()`))
	if err != nil || len(xy) != 2 {
		t.Fatalf("the frame's link: %v %v", xy, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.before = true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(xy[0], xy[1])); err != nil {
		t.Fatal(err)
	}
	// The IdP's session is alive: the whole window goes there and
	// straight back, to the dashboard, signed in (a new document, a new
	// session cookie), its widget too.
	waitFor(t, ctx, "the dashboard again, signed in", func(s browserState) bool {
		gone, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.before === undefined`))
		return gone && s.loc == base+"/dash.html" && strings.Contains(s.body, "ada@example.com")
	})
	cookies, err = chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil || len(cookies.Cookies) != 1 || cookies.Cookies[0].Name != "sso_session" {
		t.Errorf("after signing in from the frame's link, cookies %v (%v), want the session's", cookies, err)
	}
	waitUntil(t, "the widget signed in again", func() bool { return strings.Contains(frameText(), "ada@example.com") })
}

// signedInToAppPage starts the site over OIDC: the app's own pages
// (handles, Caddyfile handle blocks) and the echoing upstream for the
// rest. In Chromium it opens path, signs in as ada at the IdP's form, and
// waits for the page signed in.
func signedInToAppPage(t *testing.T, path, handles string) (ctx context.Context, base string) {
	t.Helper()
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tsso test\n%s\thandle {\n\t\treverse_proxy %s\n\t}\n}\n", w.gw.base, handles, w.upstream.hostPort())
	w.start()
	base = w.gw.base
	ctx = newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+path), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, path+" signed in", func(s browserState) bool { return s.loc == base+path && strings.Contains(s.body, "ada@example.com") })
	return ctx, base
}

// waitUntil polls done for up to 30 s, and fails the test when it never
// holds.
func waitUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if done() {
			return
		}
	}
	t.Fatalf("waiting for %s: timed out", what)
}

// TestBrowserFrameInAnotherSitesPage: a person signed in to the app
// (localhost) opens another site's page (127.0.0.1, a portal) that frames
// one of the app's pages. The SameSite=Lax session cookie never reaches
// another site's frame, so the frame cannot show the page, and neither
// "your session has ended" nor a sign-in would be true or help: it says
// the app cannot be shown inside another site's page, and its link opens
// the frame's own page in a window of its own (target=_blank,
// rel=noopener), which the person is signed in to. The portal stays.
func TestBrowserFrameInAnotherSitesPage(t *testing.T) {
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	portal := fmt.Sprintf("http://127.0.0.1:%d", testport.For(t))
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\thandle /widget {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n\t\trespond `<!doctype html><title>Widget</title><p>widget of {http.auth.user.email}</p>`\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}\n}\n"+
		"%s {\n\theader Content-Type \"text/html; charset=utf-8\"\n\trespond `<!doctype html><title>Portal</title><p>the portal</p><iframe id=f src=%s/widget?tab=2 style=\"width:600px;height:400px\"></iframe>`\n}\n",
		w.gw.base, w.upstream.hostPort(), portal, w.gw.base)
	w.start()
	ctx := newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/widget"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the widget signed in, in its own window", func(s browserState) bool {
		return s.loc == w.gw.base+"/widget" && strings.Contains(s.body, "widget of ada@example.com")
	})

	if err := chromedp.Do(ctx, chromedp.Navigate(portal+"/")); err != nil {
		t.Fatal(err)
	}
	// The frame is another site's, out of the portal's process: read it
	// through its own target.
	frame := func() (target.ID, bool) {
		targets, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range targets {
			if ti.Type == "iframe" && strings.HasPrefix(ti.URL, w.gw.base) {
				return ti.TargetID, true
			}
		}
		return "", false
	}
	var fctx context.Context
	var text string
	waitUntil(t, "the portal's frame of the app", func() bool {
		id, ok := frame()
		if !ok {
			return false
		}
		c, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
		t.Cleanup(cancel)
		text, _ = chromedp.Run(c, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		fctx = c
		return text != ""
	})
	if !strings.Contains(text, "cannot be shown inside another site's page") || strings.Contains(text, "session has ended") || strings.Contains(text, "Sign in") {
		t.Fatalf("signed in, the person opens another site's page that frames the app; the frame says:\n%s\nwant the page saying the app cannot be shown inside another site's page", text)
	}
	link, err := chromedp.Run(fctx, chromedp.Evaluate[[]string](`(() => { const a = document.querySelector('a'); return [a.href, a.target, a.rel] })()`))
	if err != nil || len(link) != 3 || link[0] != w.gw.base+"/widget?tab=2" || link[1] != "_blank" || link[2] != "noopener" {
		t.Fatalf("the frame's link: %q (%v), want the frame's own URL, target _blank, rel noopener", link, err)
	}

	// A person's click on the frame's link, at its place on the screen.
	at, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const f = document.getElementById('f'), r = f.getBoundingClientRect(); return [r.left + f.clientLeft, r.top + f.clientTop] })()`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := chromedp.Run(fctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector('a').getBoundingClientRect(); return [r.left + r.width/2, r.top + r.height/2] })()`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(at[0]+in[0], at[1]+in[1])); err != nil {
		t.Fatal(err)
	}
	var opened target.ID
	waitUntil(t, "a window of its own, opened by the frame's link", func() bool {
		targets, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range targets {
			if ti.Type == "page" && strings.HasPrefix(ti.URL, w.gw.base) {
				opened = ti.TargetID
				return true
			}
		}
		return false
	})
	wctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(opened))
	defer cancel()
	p := browsertest.WaitFor(t, wctx, "the app signed in, in the new window", func(p browsertest.Page) bool {
		return p.Location == w.gw.base+"/widget?tab=2" && strings.Contains(p.Body, "widget of ada@example.com")
	})
	if opener, err := chromedp.Run(wctx, chromedp.Evaluate[bool](`window.opener === null`)); err != nil || !opener {
		t.Errorf("the new window at %s has an opener (%v): the portal keeps a handle on it", p.Location, err)
	}
	if top, err := chromedp.Run(ctx, chromedp.Location()); err != nil || top != portal+"/" {
		t.Errorf("the portal's window left for %s (%v), want it to stay", top, err)
	}
}
