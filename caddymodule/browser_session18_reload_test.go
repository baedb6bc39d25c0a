package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// clickLink clicks the link of the page whose text is text, as a person
// does, after checking that it leads to wantHref (compared as the browser
// resolved it, without regard to the letter case of percent-encodings,
// which html/template may change).
func clickLink(t *testing.T, ctx context.Context, p shownPage, text, wantHref string) {
	t.Helper()
	found := false
	for _, l := range p.Links {
		if l.Text == text {
			found = true
			if !strings.EqualFold(l.Href, wantHref) {
				t.Fatalf("the page's %q link leads to %q, want %q", text, l.Href, wantHref)
			}
		}
	}
	if !found {
		t.Fatalf("the page %q at %s has no %q link: %+v", p.Title, p.Loc, text, p.Links)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.Search(fmt.Sprintf(`//a[normalize-space(.)=%q]`, text)))); err != nil {
		t.Fatal(err)
	}
}

// signInIfAsked waits until the browser is at want with the upstream's
// echo, signing ada in at the test IdP's form if the IdP asks (it may
// still hold her session and answer at once). It returns the echo.
func signInIfAsked(t *testing.T, ctx context.Context, want string) echoed {
	t.Helper()
	s := waitFor(t, ctx, "the page "+want+", or the IdP's login form", func(s browserState) bool {
		return (s.loc == want && strings.Contains(s.body, `"path"`)) || strings.Contains(s.body, "Password")
	})
	if s.loc != want {
		if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := waitForPage(t, ctx, want)
	return echoOf(t, body)
}

// TestBrowserSession18ReloadRenamesIdPMidSignIn drives in Chromium what
// TestReloadSignInIdPRenamedOIDC does with a Go client (docs/architecture.md,
// "Endpoints"): a person opens /page?x=1 and stops at the IdP's login form;
// a reload renames the route's IdP; the person then submits the IdP's form.
// The IdP sends them to the callback of the old name, which the route no
// longer has: they see the "Sign-in failed" page (404) with the reference
// signin_config_changed, and its "Sign in again" link signs them in at the
// renamed IdP and brings them to /page?x=1, the app's answer.
func TestBrowserSession18ReloadRenamesIdPMidSignIn(t *testing.T) {
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback", w.gw.base + "/.sso/oidc/other/callback"}})
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	ctx := newChromium(t)

	// At the IdP's login form, the sign-in begun at the IdP "test".
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/page?x=1"), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatal(err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, w.idp.Issuer) {
		t.Fatalf("the login form is at %s, not at the IdP %s", loc, w.idp.Issuer)
	}
	cf := strings.Replace(w.caddyfile(), "idp test oidc", "idp other oidc", 1)
	w.gw.reload(strings.Replace(cf, "\tsso test\n", "\tsso other\n", 1))

	if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, ctx, "Sign-in failed")
	if !strings.HasPrefix(p.Loc, w.gw.base+"/.sso/oidc/test/callback?") || p.Code != ssogateway.CodeSignInConfigChanged {
		t.Errorf("at %s: reference %q, want the old callback's page with %s:\n%s", p.Loc, p.Code, ssogateway.CodeSignInConfigChanged, p.Body)
	}
	if status := pageStatus(t, ctx); status != http.StatusNotFound {
		t.Errorf("the Sign-in failed page came with status %d, want 404", status)
	}

	clickLink(t, ctx, p, "Sign in again", w.gw.base+"/.sso/login?return_to="+url.QueryEscape("/page?x=1"))
	saw := signInIfAsked(t, ctx, w.gw.base+"/page?x=1")
	if saw.Path != "/page?x=1" || saw.header("X-Forwarded-Idp") != "other" || saw.header("X-Forwarded-Email") != "ada@example.com" {
		t.Errorf("after Sign in again, the app got %q through IdP %q as %q", saw.Path, saw.header("X-Forwarded-Idp"), saw.header("X-Forwarded-Email"))
	}
}
