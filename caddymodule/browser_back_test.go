package caddymodule_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestBrowserBackAfterSignIn presses the back button after signing in,
// over OIDC and over SAML: the IdP's page comes back from the history and,
// its session alive, sends the browser to the callback again, with a login
// the first callback finished. A browser signed in with that IdP goes on to
// "/", signed in, rather than to a failure page. One whose session is gone
// sees the failure, with the reference the audit trail has: the refused
// callback carried no flow cookie of this browser (the first callback took
// it), so its login.failed event says so (signin.UnboundFlow).
func TestBrowserBackAfterSignIn(t *testing.T) {
	for _, tc := range []struct {
		protocol, reference string
		start               func(t *testing.T) (base string)
	}{
		{"oidc", "flow_missing", func(t *testing.T) string { return newOIDCWorld(t, "\t\t\tjit\n").start().gw.base }},
		// The ACS POST comes from the IdP's site (127.0.0.1 against
		// localhost) without the SameSite=Lax session cookie.
		{"saml", "saml_flow_missing", func(t *testing.T) string { return localhostSAMLWorld(t, "", nil).gw.base }},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			base := tc.start(t)
			ctx := newChromium(t)
			browserSignIn(t, ctx, base+"/dashboard", "ada", "ada-pw")
			if err := chromedp.Do(ctx, chromedp.NavigateBack()); err != nil {
				t.Fatal(err)
			}
			if body, _ := waitForPage(t, ctx, base+"/"); !strings.Contains(body, `"X-Forwarded-Email":["ada@example.com"]`) {
				t.Errorf("back after signing in: / not signed in:\n%s", body)
			}

			// Without the session, the same back button shows the failure.
			ctx = newChromium(t)
			browserSignIn(t, ctx, base+"/second", "ada", "ada-pw")
			deleteSessionCookie(t, ctx, base)
			if err := chromedp.Do(ctx, chromedp.NavigateBack()); err != nil {
				t.Fatal(err)
			}
			text := waitForText(t, ctx, "Sign-in failed")
			if !strings.Contains(text, "Reference: "+tc.reference) {
				t.Errorf("back without a session: want reference %s:\n%s", tc.reference, text)
			}
			if got := auditReasons(t, store.EventLoginFailed); !slices.Contains(got, tc.reference) {
				t.Errorf("back without a session: the page shows reference %s, the audit trail has %q", tc.reference, got)
			}
		})
	}
}

// deleteSessionCookie drops the gateway's session cookie from the
// browser, as a session lost to its cookie's end or to cleared cookies.
func deleteSessionCookie(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "sso_session", URL: base + "/"}); err != nil {
		t.Fatal(err)
	}
}

// waitForText polls until the page's text holds want and returns it.
func waitForText(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err == nil {
			if body = b; strings.Contains(body, want) {
				return body
			}
		}
	}
	t.Fatalf("the page never showed %q; it shows:\n%s", want, body)
	return ""
}

// TestBrowserSignInAgainLink: the sign-in-failed page links to a new
// sign-in at the same IdP, which a person clicks after a sign-in whose
// login was gone (here: the back button after the session was lost).
func TestBrowserSignInAgainLink(t *testing.T) {
	w := localhostOIDCWorld(t)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	deleteSessionCookie(t, ctx, w.gw.base)
	if err := chromedp.Do(ctx, chromedp.NavigateBack()); err != nil {
		t.Fatal(err)
	}
	if text := waitForText(t, ctx, "Sign-in failed"); !strings.Contains(text, "Sign in again") {
		t.Fatalf("no Sign in again link on the page:\n%s", text)
	}
	// The IdP's session is alive: the new sign-in comes straight back.
	err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("li a")))
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := waitForPage(t, ctx, w.gw.base+"/"); !strings.Contains(body, `"X-Forwarded-Email":["ada@example.com"]`) {
		t.Errorf("after Sign in again: / not signed in:\n%s", body)
	}
}
