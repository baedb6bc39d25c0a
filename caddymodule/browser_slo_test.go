package caddymodule_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// These tests drive, in Chromium, the two sign-out pages the other browser
// tests never reach: the SAML LogoutRequest over the HTTP-POST binding (the
// gateway's choice whenever the IdP offers it: the request names the
// person, and a URL would put that in Caddy's access log), and the
// OIDC front-channel logout answer inside the IdP's iframe. As in
// browser_logout_test.go, the site is http://localhost and the IdPs are on
// 127.0.0.1: two sites, so the browser applies its cross-site cookie rules.

// postSLOWorld is localhostSAMLWorld with an IdP whose metadata offers
// both bindings for Single Logout, HTTP-Redirect listed first (as most
// IdPs list them): the gateway's sign-out still answers with its
// auto-submitting LogoutRequest page.
func postSLOWorld(t *testing.T) *samlWorld {
	t.Helper()
	return localhostSAMLWorld(t, "", func(idp *samltest.Server) {
		idp.SetLogoutBindings(saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	})
}

// navigation is one request for a document (a page or a frame), each hop
// of a redirect chain its own.
type navigation struct{ method, url string }

// navigations records the document requests of the tab from now on: which
// binding carried a SAML message shows in them (a POST to the IdP's SLO
// URL, or a GET with SAMLRequest in its query).
type navigations struct {
	mu   sync.Mutex
	list []navigation
}

func recordNavigations(t *testing.T, ctx context.Context) *navigations {
	t.Helper()
	n := &navigations{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Type == network.ResourceTypeDocument {
			n.mu.Lock()
			n.list = append(n.list, navigation{e.Request.Method, e.Request.URL})
			n.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// to returns the recorded requests for documents at URLs that start with
// prefix.
func (n *navigations) to(prefix string) []navigation {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []navigation
	for _, v := range n.list {
		if strings.HasPrefix(v.url, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// requireLogoutRequestPosted checks that the LogoutRequest reached the IdP
// once, as a POST to its SLO URL (no query: not the HTTP-Redirect binding),
// that the IdP's LogoutResponse came back by POST, and that both the IdP's
// session and the gateway's ended.
func requireLogoutRequestPosted(t *testing.T, w *samlWorld, nav *navigations) {
	t.Helper()
	if got := nav.to(w.idp.SLOURL()); len(got) != 1 || got[0].method != http.MethodPost || got[0].url != w.idp.SLOURL() {
		t.Errorf("requests for the IdP's SLO service: %v, want one POST to %s (the HTTP-POST binding)", got, w.idp.SLOURL())
	}
	// The IdP answers in the binding of the request, so its LogoutResponse
	// came back by a cross-site POST, which the gateway's SLO endpoint
	// must take without its SameSite=Lax cookies.
	if got := nav.to(w.spBase() + "slo"); len(got) != 1 || got[0].method != http.MethodPost || got[0].url != w.spBase()+"slo" {
		t.Errorf("requests for the gateway's SLO endpoint: %v, want one POST (the LogoutResponse)", got)
	}
	if n := w.idp.Requests(samltest.PathSLO); n != 1 {
		t.Errorf("the IdP's SLO endpoint was reached %d times, want 1", n)
	}
	if n := w.idp.SessionCount(); n != 0 {
		t.Errorf("IdP sessions after sign-out: %d, want 0", n)
	}
	if n := len(liveSessions(t)); n != 0 {
		t.Errorf("gateway sessions live after sign-out: %d, want 0", n)
	}
}

// TestBrowserSLOPostBinding clicks Sign out in Chromium on a SAML site
// whose IdP takes Single Logout over either binding: the gateway's answer
// is its LogoutRequest page, whose script (allowed by the page's CSP nonce)
// posts the signed request to the IdP; the IdP ends its session, its
// LogoutResponse returns the browser to the site, and the site's sign-in
// asks for the password again, which it would not with the IdP session
// alive.
func TestBrowserSLOPostBinding(t *testing.T) {
	w := postSLOWorld(t)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	if n := w.idp.SessionCount(); n != 1 {
		t.Fatalf("IdP sessions after sign-in: %d", n)
	}
	nav := recordNavigations(t, ctx)

	clickSignOut(t, ctx, w.gw.base)
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.SSOURL()) })
	requireLogoutRequestPosted(t, w, nav)
	nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.SSOURL())
}

// TestBrowserSLOPostBindingNoScript is TestBrowserSLOPostBinding with
// JavaScript off from the sign-out on: the LogoutRequest page must then
// stay put, say why, and show its submit button (crewjam's
// #SAMLSubmitButton, which the script would hide), and a person's click
// on it must complete the sign-out.
func TestBrowserSLOPostBindingNoScript(t *testing.T) {
	w := postSLOWorld(t)
	ctx := newChromium(t)
	// Sign in with script on: the IdP's own ACS form needs it, and that
	// page is not the subject here.
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	nav := recordNavigations(t, ctx)
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}

	clickSignOut(t, ctx, w.gw.base)
	// Bounded below the tab's 90 seconds, so that a page that did not
	// wait (script on after all) fails the test quickly.
	waitCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.ID("SAMLSubmitButton"))); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("the LogoutRequest page's Submit button did not show (the browser is at %s): %v", loc, err)
	}
	// Long enough for a script, had one run, to have left the page.
	time.Sleep(500 * time.Millisecond)
	s := waitFor(t, ctx, "the LogoutRequest page", func(s browserState) bool { return s.loc == w.gw.base+"/.sso/logout" })
	if !strings.Contains(s.body, "JavaScript is off: press Submit to continue.") {
		t.Errorf("the LogoutRequest page does not say what to do without script:\n%s", s.body)
	}
	if n := w.idp.Requests(samltest.PathSLO); n != 0 {
		t.Fatalf("the LogoutRequest reached the IdP %d times before the click: script is not off", n)
	}
	action, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("SAMLRequestForm"), "action"))
	if err != nil || action.Value != w.idp.SLOURL() {
		t.Errorf("the LogoutRequest form posts to %q (%v), want %s", action.Value, err, w.idp.SLOURL())
	}
	if w.idp.SessionCount() != 1 {
		t.Fatal("the IdP session ended before the click")
	}

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("SAMLSubmitButton"))); err != nil {
		t.Fatal(err)
	}
	// The IdP answers in the request's binding: its own form, which
	// without script also waits for a click.
	response := chromedp.CSS("#SAMLResponseForm #SAMLSubmitButton")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(response), chromedp.Click(response)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.SSOURL()) })
	requireLogoutRequestPosted(t, w, nav)
	nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.SSOURL())
}

// TestBrowserFrontChannelLogout: ada signs in to the site in Chromium, then
// signs out at the IdP itself. The IdP's signed-out page (on another site)
// frames the site's front-channel logout URL with iss and sid; the frame
// shows "Signed out." and the gateway session is over, so the next visit
// goes to the IdP's login form. The client has no back-channel logout URI:
// the frame is the only way the gateway can learn of the sign-out.
//
// The frame is cross-site, so Chromium sends it no SameSite=Lax session
// cookie; the product relies on the sid in the query alone (docs/security.md,
// "Logout messages from the IdP"), and the test checks in the access log
// that the request indeed came without a cookie.
func TestBrowserFrontChannelLogout(t *testing.T) {
	w := localhostOIDCWorld(t)
	front := w.gw.base + "/.sso/oidc/test/frontchannel-logout"
	w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback"}, FrontChannelLogoutURI: front})
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	sid := w.idp.SessionID("ada")
	if sid == "" || len(storedSessions(t)) != 1 {
		t.Fatalf("after sign-in: IdP sid %q, %d gateway sessions", sid, len(storedSessions(t)))
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(w.idp.Issuer+oidctest.PathEndSession)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the IdP's signed-out page", func(s browserState) bool {
		return s.loc == w.idp.Issuer+oidctest.PathEndSession && strings.Contains(s.body, "You are signed out.")
	})
	frameURL, text := frameText(t, ctx, front+"?")
	if q := frameURL.Query(); q.Get("iss") != w.idp.Issuer || q.Get("sid") != sid {
		t.Errorf("the IdP framed %s, want iss %s and sid %s", frameURL, w.idp.Issuer, sid)
	}
	if strings.TrimSpace(text) != "Signed out." {
		t.Errorf("the front-channel frame shows %q, want \"Signed out.\"", text)
	}
	if n := len(storedSessions(t)); n != 0 {
		t.Errorf("gateway sessions after the front-channel logout: %d, want 0", n)
	}
	nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.Issuer+oidctest.PathAuthorize)

	// The browser still holds the session cookie: it sent it with the
	// next visit (same site), which the gateway signed out all the same.
	// The framed request, from another site's page, carried none, so the
	// sid in its query was all the gateway had. Caddy's access log lists
	// request headers, a cookie's value redacted but its presence shown.
	var next, framed string
	for _, line := range strings.Split(w.gw.logs(), "\n") {
		switch {
		case strings.Contains(line, `"uri":"/next-visit"`) && next == "":
			next = line
		case strings.Contains(line, `"uri":"/.sso/oidc/test/frontchannel-logout?`):
			framed = line
		}
	}
	if !strings.Contains(next, `"Cookie":`) {
		t.Errorf("the next visit's log entry shows no Cookie, so the check below proves nothing:\n%.1500s", next)
	}
	if framed == "" || strings.Contains(framed, `"Cookie":`) {
		t.Errorf("the framed front-channel request is not logged, or carried a cookie:\n%.1500s", framed)
	}
}

// frameText waits for the cross-site iframe whose URL starts with prefix
// and returns its URL and its document's text. Chromium runs a cross-site
// frame as a target of its own, which the page's DOM does not reach; the
// test attaches to it (see chromedp.WithTargetID). It detaches on the way
// out (WithDetachOnCancel): cancelling a context that closes its target
// took the whole tab with the frame.
func frameText(t *testing.T, ctx context.Context, prefix string) (*url.URL, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, info := range infos {
			seen = append(seen, info.Type+" "+info.URL)
			if info.Type != "iframe" || !strings.HasPrefix(info.URL, prefix) {
				continue
			}
			u, err := url.Parse(info.URL)
			if err != nil {
				t.Fatal(err)
			}
			frameCtx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
			defer cancel()
			text, err := chromedp.Run(frameCtx, chromedp.TextContent(chromedp.CSS("body")))
			if err != nil {
				t.Fatalf("reading the frame %s: %v", info.URL, err)
			}
			return u, text
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no frame of %s* appeared; targets: %v", prefix, seen)
	return nil, ""
}
