package caddymodule_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// pageStatus is the HTTP status of the page the browser shows, as its
// Navigation Timing entry reports it.
func pageStatus(t *testing.T, ctx context.Context) int {
	t.Helper()
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`performance.getEntriesByType("navigation")[0].responseStatus`))
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// TestBrowserIdPUnreachableAtCallback: the IdP's keys cannot be fetched
// when the callback checks the ID token. The person sees what docs/pages.md
// says of an IdP that cannot be reached, "Sign-in is unavailable" (502,
// trying again may help, and what a site's handle_errors 502 takes), not
// "Sign-in failed" (400), which says their sign-in was refused.
func TestBrowserIdPUnreachableAtCallback(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.idp.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) { d["jwks_uri"] = "http://127.0.0.1:1/jwks" }})
	w.start()
	ctx := newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/dashboard"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	text := waitForText(t, ctx, "Reference:")
	if status := pageStatus(t, ctx); status != http.StatusBadGateway || !strings.Contains(text, "Sign-in is unavailable") ||
		!strings.Contains(text, "Reference: idp_unavailable") {
		t.Errorf("the IdP's keys unreachable at the callback: status %d, want 502 \"Sign-in is unavailable\":\n%s", status, text)
	}
}

// TestBrowserReloadSignInFailedPage: the SAML "Sign-in failed" page (after
// the back button, here) is reloaded. Its first view took the flow cookie
// that carried the reason, yet the reload shows the same page, with a
// fixed reference and the link to sign in, which works, rather than a
// blank 404. Nothing of the URL is shown.
func TestBrowserReloadSignInFailedPage(t *testing.T) {
	w := localhostSAMLWorld(t, "", nil)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/second", "ada", "ada-pw")
	deleteSessionCookie(t, ctx, w.gw.base)
	if err := chromedp.Do(ctx, chromedp.NavigateBack()); err != nil {
		t.Fatal(err)
	}
	if text := waitForText(t, ctx, "Sign-in failed"); !strings.Contains(text, "Reference: "+saml.CodeFlowMissing) {
		t.Fatalf("first view: want reference %s:\n%s", saml.CodeFlowMissing, text)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Logf("reload: %v", err) // Chromium's own error page for an empty 4xx
	}
	text := waitForText(t, ctx, "Reference: "+ssogateway.CodeSignInFailedReloaded)
	if status := pageStatus(t, ctx); status != http.StatusBadRequest || !strings.Contains(text, "Sign-in failed") || !strings.Contains(text, "Sign in again") {
		t.Errorf("after reload: status %d, want the 400 sign-in-failed page with its link:\n%s", status, text)
	}
	// The IdP's session is alive: the link signs straight back in, on
	// the route's home.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("li a"))); err != nil {
		t.Fatal(err)
	}
	if body, _ := waitForPage(t, ctx, w.gw.base+"/"); !strings.Contains(body, `"X-Forwarded-Email":["ada@example.com"]`) {
		t.Errorf("after the reloaded page's link: / not signed in:\n%s", body)
	}

	// Opened by a link that names a reason: the link's words are not shown.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/.sso/signin-failed?idp=test&code=call_0800_helpdesk")); err != nil {
		t.Fatal(err)
	}
	if text := waitForText(t, ctx, "Sign-in failed"); strings.Contains(text, "call_0800_helpdesk") {
		t.Errorf("the page shows the link's words:\n%s", text)
	}
}

// TestBrowserACSOpenedByGET: a person opens the SAML ACS URL itself (a
// bookmark, the back button, a URL copied from the address bar). They see
// the sign-in-failed page with the ACS's reference and the link to sign
// in, at 400, rather than Chromium's "HTTP ERROR 405"; a script still gets
// the 405.
func TestBrowserACSOpenedByGET(t *testing.T) {
	w := localhostSAMLWorld(t, "", nil)
	ctx := newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/.sso/saml/test/acs")); err != nil {
		t.Fatal(err)
	}
	text := waitForText(t, ctx, "Reference:")
	if status := pageStatus(t, ctx); status != http.StatusBadRequest || !strings.Contains(text, "Sign-in failed") ||
		!strings.Contains(text, "Reference: "+saml.CodeMethodNotAllowed) || !strings.Contains(text, "Sign in again") {
		t.Errorf("GET on the ACS: status %d, want the 400 sign-in-failed page with reference %s and its link:\n%s", status, saml.CodeMethodNotAllowed, text)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("li a")), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	if body, _ := waitForPage(t, ctx, w.gw.base+"/"); !strings.Contains(body, `"X-Forwarded-Email":["ada@example.com"]`) {
		t.Errorf("after the page's link: / not signed in:\n%s", body)
	}

	resp, err := http.Get(w.gw.base + "/.sso/saml/test/acs")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("a script's GET on the ACS: %s, Allow %q; want 405, POST", resp.Status, resp.Header.Get("Allow"))
	}
}
