package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// TestBrowserSession18EntraTenantNotAllowed drives in Chromium what
// TestEntraMultiTenantSignIn does with a Go client, through an IdP that
// behaves as Entra ID's organizations endpoint with tenants A and B
// admitted (docs/entra-oidc.md, multi-tenant apps): carol, of tenant C,
// signs in at the IdP's form and sees the "Sign-in failed" page (400) with
// the reference tenant_not_allowed, a page that names no tenant admitted
// (nor hers), in its text or its markup; alice, of tenant A, in a browser
// of her own, reaches the app as the user keyed "<tid>/<oid>".
func TestBrowserSession18EntraTenantNotAllowed(t *testing.T) {
	w := newMultiTenantWorld(t, "\t\t\tpreset entra\n\t\t\ttenants "+mtTenantA+" "+mtTenantB+"\n\t\t\tjit\n").start()

	ctx := newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/dashboard"), browsertest.SignInAtTestIdP("carol", "carol-pw")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, ctx, "Sign-in failed")
	if p.Code != oidc.CodeTenantNotAllowed {
		t.Errorf("carol (tenant C) at %s: reference %q, want %s:\n%s", p.Loc, p.Code, oidc.CodeTenantNotAllowed, p.Body)
	}
	if status := pageStatus(t, ctx); status != http.StatusBadRequest {
		t.Errorf("carol's Sign-in failed page came with status %d, want 400", status)
	}
	markup, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{mtTenantA, mtTenantB, mtTenantC} {
		if strings.Contains(p.Body, tenant) || strings.Contains(p.Title, tenant) || strings.Contains(markup, tenant) {
			t.Errorf("carol's page names tenant %s:\n%s", tenant, markup)
		}
	}
	if u := mtUser(t, mtTenantC+"/"+mtOID); u != nil {
		t.Errorf("carol was created: %+v", u)
	}

	// Alice, of tenant A, in a browser without carol's IdP session.
	ctx = newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "alice", "alice-pw")
	body, _ := waitForPage(t, ctx, w.gw.base+"/dashboard")
	saw := echoOf(t, body)
	u := mtUser(t, mtTenantA+"/"+mtOID)
	if u == nil || saw.Path != "/dashboard" || saw.header("X-Forwarded-User") != u.ID || saw.header("X-Forwarded-Email") != "alice@example.com" {
		t.Errorf("alice (tenant A): user %+v, the app got %q as %q (%q)", u, saw.Path, saw.header("X-Forwarded-User"), saw.header("X-Forwarded-Email"))
	}
}
