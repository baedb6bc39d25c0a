package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// page is what the browser shows at one moment.
type page = browsertest.Page

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// pageStyle is what makes a page look like the gateway's own pages.
const pageStyle = `getComputedStyle(document.body).maxWidth + " " + getComputedStyle(document.body).fontFamily`

// atIdPLogin waits for an IdP's login page and checks what a newcomer reads
// there: which IdP it is, and the demo users' names.
func atIdPLogin(t *testing.T, ctx context.Context, idpURL, kind string, users []demoUser) {
	t.Helper()
	p := browsertest.WaitFor(t, ctx, kind+" login page", func(p page) bool {
		return strings.HasPrefix(p.Location, idpURL) && strings.Contains(p.Body, "Password")
	})
	if p.Heading != "Sign in" {
		t.Errorf("%s login page heading %q", kind, p.Heading)
	}
	for _, want := range []string{kind, idpURL} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("%s login page does not say %q:\n%s", kind, want, p.Body)
		}
	}
	for _, u := range users {
		if !strings.Contains(p.Body, u.username+" / "+u.username) {
			t.Errorf("%s login page gives no hint of user %s:\n%s", kind, u.username, p.Body)
		}
	}
	if got := eval[string](t, ctx, pageStyle); !strings.HasPrefix(got, "640px") || !strings.Contains(got, "system-ui") {
		t.Errorf("%s login page is not styled like the gateway's pages: %s", kind, got)
	}
}

func signInAs(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	do(t, ctx, browsertest.SignInAtTestIdP(user, user))
}

// atApp waits for the demo app's page greeting name, with its JIT line
// filled in, and checks the headers the app received.
func atApp(t *testing.T, ctx context.Context, appURL, name, email, idpName string) page {
	t.Helper()
	p := browsertest.WaitFor(t, ctx, "the app greeting "+name, func(p page) bool {
		return strings.HasPrefix(p.Location, appURL) && p.Heading == "Hello, "+name && strings.Contains(p.Body, "Just-In-Time")
	})
	headers, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("headers")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"X-Forwarded-Email\t" + email, "X-Forwarded-Idp\t" + idpName, "X-Forwarded-User", "X-Forwarded-Groups"} {
		if !strings.Contains(headers, want) {
			t.Errorf("the app's header table lacks %q:\n%s", want, headers)
		}
	}
	jit, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("jit")))
	if !strings.Contains(jit, "was created Just-In-Time at your first sign-in") {
		t.Errorf("JIT line %q", jit)
	}
	return p
}

// TestDemoInChromium walks through every page of the demo in Chromium, in
// a 1000 px wide window, as a newcomer following the banner would: both
// IdPs' login pages, the app page on both sites (with each site's own
// sign-in), the app's Sign out button on both, carol's explanation page
// and alice's refusal at the second IdP.
func TestDemoInChromium(t *testing.T) {
	d := startDemo(t)
	ctx := browsertest.New(t, 1000, 800)

	// The OIDC site: the OpenID provider's login page, then the app.
	do(t, ctx, chromedp.Navigate(d.appURL+"/"))
	atIdPLogin(t, ctx, d.idp.Issuer, "OpenID provider", oidcUsers)
	signInAs(t, ctx, "alice")
	atApp(t, ctx, d.appURL, "Alice", "alice@example.com", "demo")
	if w := eval[int](t, ctx, "window.innerWidth"); w < 900 || w > 1000 {
		t.Errorf("window is %d px wide, want about 1000", w)
	}
	// Nothing overflows the window: the JIT line and the JSON wrap.
	if !eval[bool](t, ctx, `document.documentElement.scrollWidth <= window.innerWidth`) {
		t.Errorf("the app page scrolls sideways in a 1000 px window (%d px wide)", eval[int](t, ctx, "document.documentElement.scrollWidth"))
	}
	if !eval[bool](t, ctx, `[...document.querySelectorAll('#jit, #whoami, #headers')].every(e => e.scrollWidth <= e.clientWidth && e.getBoundingClientRect().right <= window.innerWidth)`) {
		t.Error("the JIT line, the whoami JSON or the header table overflows its box")
	}

	// The SAML site is another host: its own sign-in, at the SAML IdP.
	do(t, ctx, chromedp.Navigate(d.samlAppURL+"/"))
	atIdPLogin(t, ctx, d.samlIdP.URL, "SAML identity provider", samlUsers)
	signInAs(t, ctx, "bob")
	atApp(t, ctx, d.samlAppURL, "Bob", "bob@example.com", "demo-saml")

	// Sign out on the SAML site: through the IdP's Single Logout and
	// back, to the IdP asking for the password again.
	do(t, ctx, chromedp.Click(chromedp.ID("logout")))
	atIdPLogin(t, ctx, d.samlIdP.URL, "SAML identity provider", samlUsers)

	// alice's session on the OIDC site is untouched; sign out there too.
	do(t, ctx, chromedp.Navigate(d.appURL+"/"))
	atApp(t, ctx, d.appURL, "Alice", "alice@example.com", "demo")
	do(t, ctx, chromedp.Click(chromedp.ID("logout")))
	atIdPLogin(t, ctx, d.idp.Issuer, "OpenID provider", oidcUsers)

	// carol: the gateway's page explains the missing email address.
	signInAs(t, ctx, "carol")
	p := browsertest.WaitFor(t, ctx, "carol's explanation", func(p page) bool { return p.Heading == "Your account could not be set up" })
	if !strings.Contains(p.Body, "email") || !strings.Contains(p.Body, "missing_attributes") {
		t.Errorf("carol's page:\n%s", p.Body)
	}
	if got := eval[string](t, ctx, pageStyle); !strings.HasPrefix(got, "640px") {
		t.Errorf("the gateway's page style: %s", got)
	}

	// alice at the SAML IdP: the email_conflict rule the banner describes.
	do(t, ctx, chromedp.Navigate(d.samlAppURL+"/"))
	atIdPLogin(t, ctx, d.samlIdP.URL, "SAML identity provider", samlUsers)
	signInAs(t, ctx, "alice")
	p = browsertest.WaitFor(t, ctx, "alice's refusal on the SAML site", func(p page) bool { return p.Heading == "Access denied" })
	if !strings.Contains(p.Body, "already belongs to another account") || !strings.Contains(p.Body, "email_conflict") {
		t.Errorf("alice on the SAML site:\n%s", p.Body)
	}
}

// TestDemoWrongPasswordAndWhoamiInChromium: on each site of the demo a
// newcomer first mistypes the password at the IdP's login form, which
// stays put and says so (its #error line), then signs in with the right
// one, and follows the app page's /.sso/whoami link to the JSON the
// gateway keeps about them.
func TestDemoWrongPasswordAndWhoamiInChromium(t *testing.T) {
	d := startDemo(t)
	for _, site := range []struct {
		appURL, idpURL, kind, wrongText string
		users                           []demoUser
		user, name, email, idp          string
	}{
		{d.appURL, d.idp.Issuer, "OpenID provider", "Wrong username or password.", oidcUsers, "alice", "Alice", "alice@example.com", "demo"},
		{d.samlAppURL, d.samlIdP.URL, "SAML identity provider", "Invalid username or password.", samlUsers, "bob", "Bob", "bob@example.com", "demo-saml"},
	} {
		t.Run(site.idp, func(t *testing.T) {
			ctx := browsertest.New(t, 1000, 800)
			do(t, ctx, chromedp.Navigate(site.appURL+"/"))
			atIdPLogin(t, ctx, site.idpURL, site.kind, site.users)
			if n := eval[int](t, ctx, `document.querySelectorAll("#error").length`); n != 0 {
				t.Errorf("the login form shows an error before any attempt")
			}

			do(t, ctx, browsertest.SignInAtTestIdP(site.user, site.user+"-wrong"))
			p := browsertest.WaitFor(t, ctx, "the login form's error", func(p page) bool {
				return strings.HasPrefix(p.Location, site.idpURL) && p.Heading != "" && strings.Contains(p.Body, site.wrongText)
			})
			if got, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("error"))); strings.TrimSpace(got) != site.wrongText {
				t.Errorf("#error says %q, want %q", got, site.wrongText)
			}
			if p.Heading != "Sign in" || !strings.Contains(p.Body, "Password") || strings.Contains(p.Body, "Hello") {
				t.Errorf("after a wrong password the browser shows %q at %s:\n%s", p.Heading, p.Location, p.Body)
			}
			// The form is there to try again, and the right password
			// goes through.
			do(t, ctx, browsertest.SignInAtTestIdP(site.user, site.user))
			atApp(t, ctx, site.appURL, site.name, site.email, site.idp)

			do(t, ctx, chromedp.Click(chromedp.CSS(`a[href="/.sso/whoami"]`)))
			p = browsertest.WaitFor(t, ctx, "the whoami JSON", func(p page) bool {
				return p.Location == site.appURL+"/.sso/whoami" && strings.Contains(p.Body, "{")
			})
			raw := eval[string](t, ctx, `document.querySelector("pre") ? document.querySelector("pre").innerText : document.body.innerText`)
			var who struct {
				ID, Email, IdP, Source string
				FirstName              string `json:"first_name"`
			}
			if err := json.Unmarshal([]byte(raw), &who); err != nil {
				t.Fatalf("the whoami link shows no JSON (%v):\n%s", err, p.Body)
			}
			if who.Email != site.email || who.IdP != site.idp || who.Source != "jit" || who.FirstName != site.name || who.ID == "" {
				t.Errorf("whoami shows %+v, want %s via %s, created by jit", who, site.email, site.idp)
			}
		})
	}
}
