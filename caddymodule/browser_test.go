package caddymodule_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
	"github.com/caddy-sso/caddy-sso/store"
)

// newChromium starts a headless Chromium for one test (a 1280x800
// window) and returns a context that drives one tab; see browsertest.New.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	return browsertest.New(t, 1280, 800)
}

// TestBrowserOIDCLogin signs in through a real browser: the protected page
// redirects to the provider's login form, the form is filled in and
// submitted, the provider redirects back, and the upstream's echo of the
// headers it received is read from the page.
func TestBrowserOIDCLogin(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	ctx := newChromium(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(w.gw.base+"/dashboard"),
		browsertest.SignInAtTestIdP("ada", "ada-pw"),
	)
	if err != nil {
		t.Fatal(err)
	}
	// The click starts a chain of navigations (IdP, callback, the page);
	// the browser must settle on the page it first asked for.
	body, _ := waitForPage(t, ctx, w.gw.base+"/dashboard")
	for _, want := range []string{`"/dashboard"`, `"X-Forwarded-Email":["ada@example.com"]`, `"X-Forwarded-First-Name":["Ada"]`} {
		if !strings.Contains(body, want) {
			t.Errorf("upstream echo lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "sso_session") {
		t.Error("the session cookie reached the upstream")
	}
}

// TestBrowserSAMLLogin signs in over SAML in a real browser, with the site
// (localhost) and the IdP (127.0.0.1) on different sites: the IdP's
// POST-binding form auto-submits cross-site to the ACS, and the login flow
// cookie and then the session must survive that.
func TestBrowserSAMLLogin(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n")
	w.gw.base = fmt.Sprintf("http://localhost:%d", w.gw.port)
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	ctx := newChromium(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(w.gw.base+"/dashboard"),
		browsertest.SignInAtTestIdP("ada", "ada-pw"),
	)
	if err != nil {
		t.Fatal(err)
	}
	body, loc := waitForPage(t, ctx, w.gw.base+"/dashboard")
	for _, want := range []string{`"/dashboard"`, `"X-Forwarded-Email":["ada@example.com"]`, `"X-Forwarded-Last-Name":["Lovelace"]`} {
		if !strings.Contains(body, want) {
			t.Errorf("at %s the upstream echo lacks %s:\n%s", loc, want, body)
		}
	}
	// The session cookie set in answer to the cross-site POST carries the
	// next navigation.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/second")); err != nil {
		t.Fatal(err)
	}
	if body, _ = waitForPage(t, ctx, w.gw.base+"/second"); !strings.Contains(body, `"X-Forwarded-Email":["ada@example.com"]`) {
		t.Errorf("second page not signed in:\n%s", body)
	}
}

// waitForPage polls until the browser shows want with the upstream's echo,
// and returns the page text and where the browser is.
func waitForPage(t *testing.T, ctx context.Context, want string) (string, string) {
	t.Helper()
	var body, loc string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p, err := browsertest.Look(ctx); err == nil {
			body, loc = p.Body, p.Location
			if loc == want && strings.Contains(body, `"path"`) {
				return body, loc
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("browser did not reach %s; it is at %s showing:\n%s", want, loc, body)
	return "", ""
}

// TestBrowserSAMLSignInAgainEndsPreviousSession signs in over SAML twice
// in one Chromium, the site (localhost) and the IdP (127.0.0.1) on
// different sites. The second sign-in's ACS POST comes from the IdP's site
// without the session cookie (SameSite=Lax), yet it must end the first
// session, as a sign-in whose callback sees the cookie does: the sign-in
// carried it there in a flow cookie.
func TestBrowserSAMLSignInAgainEndsPreviousSession(t *testing.T) {
	w := localhostSAMLWorld(t, "", nil)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	first := storedSessions(t)
	if len(first) != 1 {
		t.Fatalf("%d sessions after the first sign-in, want 1", len(first))
	}

	// The IdP still has Ada's session: it answers at once.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/.sso/login?return_to=/again")); err != nil {
		t.Fatal(err)
	}
	waitForPage(t, ctx, w.gw.base+"/again")
	second := storedSessions(t)
	if len(second) != 1 || second[0] == first[0] {
		t.Fatalf("sessions after signing in again: %d (the first one kept: %v), want only a new one",
			len(second), slices.Contains(second, first[0]))
	}
	if got := auditReasons(t, store.EventSessionLoggedOut); !slices.Equal(got, []string{"signed_in_again"}) {
		t.Errorf("logged-out events %v, want one signed_in_again", got)
	}
}

// storedSessions lists the hashes of the sessions in the store.
func storedSessions(t *testing.T) []string {
	return sessionsStored(t, func(*store.Session) bool { return true })
}

// liveSessions lists the hashes of the stored sessions whose stored end
// has not come: a signed-out one stays stored, ended, until the sweep
// (session.Manager.SignOut).
func liveSessions(t *testing.T) []string {
	now := time.Now()
	return sessionsStored(t, func(s *store.Session) bool { return s.Expires.After(now) })
}

func sessionsStored(t *testing.T, keep func(*store.Session) bool) []string {
	t.Helper()
	var hashes []string
	view(t, func(tx store.Tx) error {
		return tx.ForEachSession("", func(s *store.Session) error {
			if keep(s) {
				hashes = append(hashes, s.Hash)
			}
			return nil
		})
	})
	return hashes
}
