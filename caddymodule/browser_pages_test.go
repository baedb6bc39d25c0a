package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	crewjam "github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
	"github.com/caddy-sso/caddy-sso/store"
)

// These tests drive in Chromium, in a real flow, the pages and buttons
// that other tests reach only as samples or with a plain HTTP client: the
// LogoutResponse page of a sign-out begun at the SAML IdP, a sign-in begun
// at the SAML IdP, the forbidden, denied and unavailable pages, and every
// link of the IdP chooser. Each asserts what the person sees: the title,
// the text, the reference code, the status of the document, and where a
// button or link leads.

// shownPage is what a gateway page shows a person.
type shownPage struct {
	Loc   string      `json:"loc"`
	Title string      `json:"title"`
	H1    string      `json:"h1"`
	Body  string      `json:"body"`
	Code  string      `json:"code"` // the reference code, "Reference: <code>"
	Links []shownLink `json:"links"`
}

type shownLink struct {
	Text string `json:"text"`
	Href string `json:"href"`
}

const readPageJS = `(() => ({
	loc: location.href,
	title: document.title,
	h1: (document.querySelector("h1") || {}).innerText || "",
	body: document.body ? document.body.innerText : "",
	code: (document.querySelector("small code") || {}).innerText || "",
	links: Array.from(document.querySelectorAll("a"), a => ({text: a.innerText, href: a.href})),
}))()`

// waitForTitle waits until the browser shows a page titled title, and
// returns it.
func waitForTitle(t *testing.T, ctx context.Context, title string) shownPage {
	t.Helper()
	var p shownPage
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[shownPage](readPageJS))
		if err == nil {
			p = got
			if p.Title == title && p.H1 == title {
				return p
			}
		}
	}
	t.Fatalf("waiting for the page %q: the browser is at %s showing %q:\n%s", title, p.Loc, p.Title, p.Body)
	return p
}

// internalText is what a page must never show a person: internal errors,
// identifiers, addresses.
var internalText = []string{"login denied", "error", "Error", "sub-ada", "sub-bob", "dial tcp", "connection refused",
	"127.0.0.1", "provision", "panic", "goroutine", ".go:"}

// requireNoInternalText fails the test when the page shows internal text
// or any of the extra strings.
func requireNoInternalText(t *testing.T, p shownPage, extra ...string) {
	t.Helper()
	for _, s := range append(slices.Clone(internalText), extra...) {
		if s != "" && strings.Contains(p.Body+p.Title, s) {
			t.Errorf("the page %q shows %q:\n%s", p.Title, s, p.Body)
		}
	}
}

// responses records the status of every document the tab receives from
// now on.
type responses struct {
	mu   sync.Mutex
	list []docResponse
}

type docResponse struct {
	status int
	url    string
}

func recordResponses(t *testing.T, ctx context.Context) *responses {
	t.Helper()
	r := &responses{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && e.Type == network.ResourceTypeDocument {
			r.mu.Lock()
			r.list = append(r.list, docResponse{int(e.Response.Status), e.Response.URL})
			r.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// statusOf returns the status of the latest document received from
// rawURL, or 0.
func (r *responses) statusOf(rawURL string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.list) - 1; i >= 0; i-- {
		if r.list[i].url == rawURL {
			return r.list[i].status
		}
	}
	return 0
}

// requireStatus fails the test unless the document at rawURL came with
// want. The event may reach the test just after the page shows.
func (r *responses) requireStatus(t *testing.T, rawURL string, want int) {
	t.Helper()
	var got int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = r.statusOf(rawURL); got != 0 {
			break
		}
	}
	if got != want {
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Errorf("the page at %s came with status %d, want %d; documents received: %.1000v", rawURL, got, want, r.list)
	}
}

// idpInitiatedSLOWorld is a SAML world whose site and IdP are both on
// 127.0.0.1, so that the IdP's own cookie (SameSite=Lax over plain http)
// comes along with the LogoutResponse the gateway's page posts back to it,
// and whose IdP takes Single Logout only over HTTP-POST: the gateway
// answers the IdP's LogoutRequest with its auto-submitting page.
func idpInitiatedSLOWorld(t *testing.T) *samlWorld {
	t.Helper()
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n")
	w.idp.SetLogoutBindings(crewjam.HTTPPostBinding)
	w.start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	return w
}

// TestBrowserPagesIdPInitiatedSignOut: ada, signed in to the site over
// SAML, signs out at the IdP. The IdP sends the browser to the site's SLO
// endpoint with a LogoutRequest; the gateway ends her session and answers
// with its page that posts the LogoutResponse back to the IdP (by script,
// or with script off by the person pressing Submit); the IdP then sends
// the browser where its sign-out was to return to, a page of the site,
// which asks her to sign in again at the IdP.
func TestBrowserPagesIdPInitiatedSignOut(t *testing.T) {
	for _, script := range []bool{true, false} {
		t.Run(map[bool]string{true: "script on", false: "script off"}[script], func(t *testing.T) {
			w := idpInitiatedSLOWorld(t)
			ctx := newChromium(t)
			browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
			if n, s := w.idp.SessionCount(), len(storedSessions(t)); n != 1 || s != 1 {
				t.Fatalf("after sign-in: %d IdP sessions, %d gateway sessions", n, s)
			}
			nav := recordNavigations(t, ctx)
			statuses := recordResponses(t, ctx)
			if !script {
				disableScript(t, ctx)
			}

			back := w.gw.base + "/after-idp-logout"
			if err := chromedp.Do(ctx, chromedp.Navigate(w.idp.LogoutURL(back))); err != nil {
				t.Fatal(err)
			}
			if !script {
				// The gateway's page waits for the person.
				waitVisible(t, ctx, "the LogoutResponse page's Submit button", chromedp.ID("SAMLSubmitButton"))
				p, err := chromedp.Run(ctx, chromedp.Evaluate[shownPage](readPageJS))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(p.Loc, w.spBase()+"slo?") || p.Title != "Continue" || !strings.Contains(p.Body, noscriptLine) {
					t.Errorf("the LogoutResponse page: at %s titled %q showing:\n%s\nwant the site's SLO endpoint, \"Continue\" and %q",
						p.Loc, p.Title, p.Body, noscriptLine)
				}
				statuses.requireStatus(t, p.Loc, http.StatusOK)
				if !submitButtonShown(t, ctx, "SAMLSubmitButton") {
					t.Fatal("without script the LogoutResponse page's Submit button is not shown")
				}
				form, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
					`(() => { const f = document.getElementById("SAMLSubmitButton").form; return [f.method, f.action, f.elements.SAMLResponse ? "SAMLResponse" : ""] })()`))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(form, []string{"post", w.idp.SLOURL(), "SAMLResponse"}) {
					t.Errorf("the button submits %v, want a POST of SAMLResponse to %s", form, w.idp.SLOURL())
				}
				// Her session here ended before the answer went back.
				if n := len(storedSessions(t)); n != 0 {
					t.Errorf("gateway sessions while the LogoutResponse page waits: %d, want 0", n)
				}
				if got := nav.to(w.idp.SLOURL()); len(got) != 0 {
					t.Fatalf("the LogoutResponse reached the IdP before the click: %v", got)
				}
				if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("SAMLSubmitButton"))); err != nil {
					t.Fatal(err)
				}
			}

			s := waitFor(t, ctx, "the IdP's login form after the IdP's sign-out", func(s browserState) bool {
				return s.idpAsksForPassword(w.idp.SSOURL())
			})
			if strings.Contains(s.body, "ada@example.com") {
				t.Errorf("the IdP still knows ada:\n%s", s.body)
			}
			// The LogoutRequest came to the SLO endpoint, the answer went
			// to the IdP's by POST (the page's form), and the IdP sent the
			// browser back to the site, which sent it to sign in.
			if got := nav.to(w.spBase() + "slo"); len(got) != 1 || got[0].method != http.MethodGet || !strings.Contains(got[0].url, "SAMLRequest=") {
				t.Errorf("requests for the site's SLO endpoint: %.300v, want one GET with a SAMLRequest", got)
			}
			if got := nav.to(w.idp.SLOURL()); len(got) != 1 || got[0].method != http.MethodPost {
				t.Errorf("requests for the IdP's SLO endpoint: %v, want one POST (the LogoutResponse)", got)
			}
			if got := nav.to(back); len(got) != 1 {
				t.Errorf("requests for %s: %v, want one (where the IdP's sign-out returns)", back, got)
			}
			if n := w.idp.SessionCount(); n != 0 {
				t.Errorf("IdP sessions after its sign-out: %d, want 0", n)
			}
			if n := len(storedSessions(t)); n != 0 {
				t.Errorf("gateway sessions after the IdP's sign-out: %d, want 0", n)
			}
			if got := auditReasons(t, store.EventSessionLoggedOut); !slices.Equal(got, []string{account.ReasonIdPLogout}) {
				t.Errorf("logged-out events %v, want one %s", got, account.ReasonIdPLogout)
			}
			nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.SSOURL())
		})
	}
}

// TestBrowserPagesIdPInitiatedSignIn: a person opens the app from the SAML
// IdP's portal (an IdP-initiated sign-in, RelayState the page to open).
// With idp_initiated set (README, docs/security.md) they sign in at the
// IdP and land on that page, signed in. Without it (the default) the
// gateway refuses the unsolicited response with the "Sign-in failed" page,
// reference saml_unsolicited, whose "Sign in again" link starts a sign-in
// from the site that succeeds.
func TestBrowserPagesIdPInitiatedSignIn(t *testing.T) {
	t.Run("idp_initiated on", func(t *testing.T) {
		w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n\t\t\tidp_initiated\n").start()
		w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
		ctx := newChromium(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(w.idp.IdPInitiatedURL(w.spEntityID(), "/reports?q=1"))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the IdP's login form", func(s browserState) bool { return s.idpAsksForPassword(w.idp.URL) })
		if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
			t.Fatal(err)
		}
		body, _ := waitForPage(t, ctx, w.gw.base+"/reports?q=1")
		if e := echoOf(t, body); e.Path != "/reports?q=1" || e.header("X-Forwarded-Email") != "ada@example.com" || e.header("X-Forwarded-Idp") != "test" {
			t.Errorf("the upstream saw %s as %q via %q, want /reports?q=1 as ada@example.com via test",
				e.Path, e.header("X-Forwarded-Email"), e.header("X-Forwarded-Idp"))
		}
		if n := len(storedSessions(t)); n != 1 {
			t.Errorf("gateway sessions: %d, want 1", n)
		}
	})

	t.Run("idp_initiated off", func(t *testing.T) {
		w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
		w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
		ctx := newChromium(t)
		statuses := recordResponses(t, ctx)
		if err := chromedp.Do(ctx, chromedp.Navigate(w.idp.IdPInitiatedURL(w.spEntityID(), "/reports?q=1"))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the IdP's login form", func(s browserState) bool { return s.idpAsksForPassword(w.idp.URL) })
		if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
			t.Fatal(err)
		}
		p := waitForTitle(t, ctx, "Sign-in failed")
		if p.Loc != w.spBase()+"acs" {
			t.Errorf("the refusal is at %s, want the ACS", p.Loc)
		}
		statuses.requireStatus(t, p.Loc, http.StatusBadRequest)
		if p.Code != saml.CodeUnsolicited || !strings.Contains(p.Body, "Reference: "+saml.CodeUnsolicited) {
			t.Errorf("reference %q, want %s:\n%s", p.Code, saml.CodeUnsolicited, p.Body)
		}
		if !strings.Contains(p.Body, "The sign-in could not be completed.") {
			t.Errorf("the page does not say the sign-in failed:\n%s", p.Body)
		}
		requireNoInternalText(t, p, "InResponseTo", "unsolicited response")
		if len(p.Links) != 1 || p.Links[0].Text != "Sign in again" || p.Links[0].Href != w.gw.base+"/.sso/login?idp=test" {
			t.Fatalf("links %+v, want one \"Sign in again\" to %s/.sso/login?idp=test", p.Links, w.gw.base)
		}
		if n := len(storedSessions(t)); n != 0 {
			t.Errorf("gateway sessions after the refusal: %d, want 0", n)
		}

		// The link signs in from the site; the IdP still has her session,
		// so she lands at once.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("li a"))); err != nil {
			t.Fatal(err)
		}
		body, _ := waitForPage(t, ctx, w.gw.base+"/")
		if e := echoOf(t, body); e.Path != "/" || e.header("X-Forwarded-Email") != "ada@example.com" {
			t.Errorf("after \"Sign in again\" the upstream saw %s as %q, want / as ada@example.com", e.Path, e.header("X-Forwarded-Email"))
		}
	})
}

// TestBrowserPagesForbidden: bob signs in on a route that allows only
// group eng, which he is not in. He is signed in (the IdP vouched for him)
// but gets the forbidden page, 403, which names no rule, group or IdP, has
// no reference, and keeps answering the same for every page of the route.
// Its one link, "Sign out", is his way to another account: it leads to the
// sign-out confirmation, whose button ends his session here and at the
// IdP, so that the next visit asks for a password.
func TestBrowserPagesForbidden(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.idp.AddUser("bob", "bob-pw", map[string]any{
		"sub": "sub-bob", "given_name": "Bob", "family_name": "Builder",
		"email": "bob@sales.example.org", "email_verified": true, "groups": []string{"sales"},
	})
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tallow group eng\n\t}\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	ctx := newChromium(t)
	statuses := recordResponses(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/app?x=1"), browsertest.SignInAtTestIdP("bob", "bob-pw")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, ctx, "Access denied")
	if p.Loc != w.gw.base+"/app?x=1" {
		t.Errorf("the forbidden page is at %s, want the page bob asked for", p.Loc)
	}
	statuses.requireStatus(t, p.Loc, http.StatusForbidden)
	if !strings.Contains(p.Body, "You are signed in, but your account may not use this page.") ||
		!strings.Contains(p.Body, "sign out to use another account") {
		t.Errorf("the forbidden page does not say why, or what to do:\n%s", p.Body)
	}
	if p.Code != "" || strings.Contains(p.Body, "Reference") {
		t.Errorf("the forbidden page shows reference %q, want none:\n%s", p.Code, p.Body)
	}
	if len(p.Links) != 1 || p.Links[0].Text != "Sign out" || p.Links[0].Href != w.gw.base+"/.sso/logout" {
		t.Errorf("the forbidden page's links: %+v, want one, Sign out, to the sign-out page", p.Links)
	}
	requireNoInternalText(t, p, "eng", "sales", "group", "test", "bob")
	if n := len(storedSessions(t)); n != 1 {
		t.Errorf("gateway sessions: %d, want bob's", n)
	}

	// Another page of the route: the same answer, without a new sign-in.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/other")); err != nil {
		t.Fatal(err)
	}
	if p := waitForTitle(t, ctx, "Access denied"); p.Loc != w.gw.base+"/other" {
		t.Errorf("the next page shows the forbidden page at %s", p.Loc)
	}
	statuses.requireStatus(t, w.gw.base+"/other", http.StatusForbidden)
	if n := w.idp.Requests(oidctest.PathToken); n != 1 {
		t.Errorf("the IdP's token endpoint was reached %d times, want once (one sign-in)", n)
	}

	// Sign out, to use another account.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("li a"))); err != nil {
		t.Fatal(err)
	}
	if p := waitForTitle(t, ctx, "Sign out"); p.Loc != w.gw.base+"/.sso/logout" {
		t.Errorf("the Sign out link led to %s", p.Loc)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("submit"))); err != nil {
		t.Fatal(err)
	}
	idpLogin := w.idp.Issuer + oidctest.PathAuthorize
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(idpLogin) })
	if n := len(liveSessions(t)); n != 0 {
		t.Errorf("gateway sessions live after signing out: %d, want none", n)
	}
	nextVisitAsksForPassword(t, ctx, w.gw.base, idpLogin)
}

// TestBrowserPagesDenied signs in, in Chromium, as a user whom the JIT
// rules refuse, for each reason a person meets: an account deactivated by
// the administrator (after signing in once), an email domain outside
// allowed_domains, and a new account created as pending ("Waiting for
// approval"), which the administrator then approves.
func TestBrowserPagesDenied(t *testing.T) {
	for _, tc := range []struct {
		name, idpBlock, title, code, message string
		before, after                        func(t *testing.T, w *oidcWorld, ctx context.Context)
	}{
		{
			name: "deactivated", idpBlock: "\t\t\tjit\n", title: "Access denied", code: "deactivated",
			message: "Your account has been deactivated.",
			before: func(t *testing.T, w *oidcWorld, ctx context.Context) {
				// Ada signs in, then the administrator disables her: her
				// session ends, and her next visit signs in again at the
				// IdP, which still has her session.
				browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
				w.gw.adminJSON(http.MethodPost, "/sso/users/"+userBySubject(t, "sub-ada").ID+"/disable", http.StatusOK, nil)
				if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/reports")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "domain_not_allowed", idpBlock: "\t\t\tjit\n\t\t\tallowed_domains example.org\n", title: "Access denied",
			code: "domain_not_allowed", message: "Your email domain is not allowed to sign in to this application.",
		},
		{
			name: "pending", idpBlock: "\t\t\tjit\n\t\t\tcreate_as pending\n", title: "Waiting for approval", code: "pending",
			message: "Your account is waiting for administrator approval.",
			after: func(t *testing.T, w *oidcWorld, ctx context.Context) {
				// Once the administrator approves her, the same visit
				// gets her in.
				w.gw.adminJSON(http.MethodPost, "/sso/users/"+userBySubject(t, "sub-ada").ID+"/enable", http.StatusOK, nil)
				if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/reports")); err != nil {
					t.Fatal(err)
				}
				body, _ := waitForPage(t, ctx, w.gw.base+"/reports")
				if e := echoOf(t, body); e.header("X-Forwarded-Email") != "ada@example.com" {
					t.Errorf("after approval the upstream saw %q", e.header("X-Forwarded-Email"))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOIDCWorld(t, tc.idpBlock).start()
			ctx := newChromium(t)
			statuses := recordResponses(t, ctx)
			if tc.before != nil {
				tc.before(t, w, ctx)
			} else if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/reports"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
				t.Fatal(err)
			}
			p := waitForTitle(t, ctx, tc.title)
			if !strings.HasPrefix(p.Loc, w.gw.base+"/.sso/oidc/test/callback?") {
				t.Errorf("the page is at %s, want the callback", p.Loc)
			}
			statuses.requireStatus(t, p.Loc, http.StatusForbidden)
			if !strings.Contains(p.Body, tc.message) {
				t.Errorf("the page does not say %q:\n%s", tc.message, p.Body)
			}
			if p.Code != tc.code || !strings.Contains(p.Body, "Reference: "+tc.code) {
				t.Errorf("reference %q, want %s:\n%s", p.Code, tc.code, p.Body)
			}
			if len(p.Links) != 0 {
				t.Errorf("the page has links %+v, want none", p.Links)
			}
			var userID string // none for a domain refused before creating her
			view(t, func(tx store.Tx) error {
				if u, err := tx.UserByLink("test", "sub-ada"); err == nil {
					userID = u.ID
				}
				return nil
			})
			if (userID == "") != (tc.code == "domain_not_allowed") {
				t.Errorf("user ID %q after a %s denial", userID, tc.code)
			}
			requireNoInternalText(t, p, userID)
			if n := len(storedSessions(t)); n != 0 {
				t.Errorf("gateway sessions after the denial: %d, want 0", n)
			}
			if got := auditReasons(t, store.EventLoginDenied); !slices.Equal(got, []string{tc.code}) {
				t.Errorf("login-denied events %v, want one %s", got, tc.code)
			}
			// A new visit is refused the same way, not let in.
			if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/again")); err != nil {
				t.Fatal(err)
			}
			if p := waitForTitle(t, ctx, tc.title); p.Code != tc.code {
				t.Errorf("the next visit: reference %q, want %s", p.Code, tc.code)
			}
			if tc.after != nil {
				tc.after(t, w, ctx)
			}
		})
	}
}

// TestBrowserPagesUnavailable: the OpenID provider cannot be reached (its
// server is stopped) when a person opens the site: the gateway shows
// "Sign-in is unavailable", 502, reference idp_unavailable, and nothing of
// the error. Once the IdP is back (on the same address), trying again, as
// the page says, leads to the IdP's login form.
func TestBrowserPagesUnavailable(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	addr := strings.TrimPrefix(w.idp.Issuer, "http://")
	if err := w.idp.Close(); err != nil {
		t.Fatal(err)
	}
	w.start()
	ctx := newChromium(t)
	statuses := recordResponses(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/reports")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, ctx, "Sign-in is unavailable")
	if p.Loc != w.gw.base+"/reports" {
		t.Errorf("the page is at %s, want the page asked for", p.Loc)
	}
	statuses.requireStatus(t, p.Loc, http.StatusBadGateway)
	if !strings.Contains(p.Body, "The identity provider could not be reached. Try again in a moment.") {
		t.Errorf("the page does not say what happened:\n%s", p.Body)
	}
	if p.Code != "idp_unavailable" || !strings.Contains(p.Body, "Reference: idp_unavailable") {
		t.Errorf("reference %q, want idp_unavailable:\n%s", p.Code, p.Body)
	}
	requireNoInternalText(t, p, addr, "discovery", "well-known")

	// The IdP comes back on its address; the gateway tries it again
	// after a short pause, so a person who reloads gets to sign in.
	op, err := oidctest.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	op.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback"}})
	op.AddUser("ada", "ada-pw", map[string]any{"sub": "sub-ada", "email": "ada@example.com", "email_verified": true,
		"given_name": "Ada", "family_name": "Lovelace"})
	var s browserState
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		s = waitFor(t, ctx, "a page after reloading", func(s browserState) bool {
			return s.idpAsksForPassword(op.Issuer) || strings.Contains(s.body, "Sign-in is unavailable")
		})
		if s.idpAsksForPassword(op.Issuer) {
			break
		}
	}
	if !s.idpAsksForPassword(op.Issuer + oidctest.PathAuthorize) {
		t.Fatalf("reloading after the IdP came back: at %s showing:\n%s", s.loc, s.body)
	}
	if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitForPage(t, ctx, w.gw.base+"/reports")
}

// TestBrowserPagesTokenRefreshFailed: on a route that passes the access
// token, the token has expired and the IdP's token endpoint fails (503)
// when a person opens a page: the gateway shows "Temporarily unavailable",
// 502, reference token_refresh_failed, and nothing of the error (a bare
// 502 left the browser blank). The session is kept, so once the endpoint
// answers again, trying again, as the page says, shows the page with a
// fresh token and no new sign-in.
func TestBrowserPagesTokenRefreshFailed(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n\t\t\toffline_access\n")
	issuer, err := url.Parse(w.idp.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(issuer)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(rw, "token endpoint down for maintenance", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(front.Close)
	w.idp.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) { d["token_endpoint"] = front.URL + oidctest.PathToken }})
	w.idp.SetAccessTokenTTL(2 * time.Second)
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tpass_access_token\n\t\ttoken_refresh_margin 1s\n\t}\n\treverse_proxy %s\n}\n",
		w.gw.base, w.upstream.hostPort())
	w.start()
	ctx := newChromium(t)
	statuses := recordResponses(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/reports"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	body, _ := waitForPage(t, ctx, w.gw.base+"/reports")
	if !strings.Contains(body, "X-Forwarded-Access-Token") {
		t.Fatalf("the upstream got no access token:\n%s", body)
	}
	time.Sleep(2500 * time.Millisecond) // the access token has expired: the next request must renew it
	down.Store(true)

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/reports?again")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, ctx, "Temporarily unavailable")
	if p.Loc != w.gw.base+"/reports?again" {
		t.Errorf("the page is at %s, want the page asked for", p.Loc)
	}
	statuses.requireStatus(t, p.Loc, http.StatusBadGateway)
	if !strings.Contains(p.Body, "This application could not renew your access with the identity provider right now. Try again in a moment.") {
		t.Errorf("the page does not say what happened:\n%s", p.Body)
	}
	if p.Code != "token_refresh_failed" || !strings.Contains(p.Body, "Reference: token_refresh_failed") || len(p.Links) != 0 {
		t.Errorf("reference %q, links %v; want token_refresh_failed and no sign-in link:\n%s", p.Code, p.Links, p.Body)
	}
	requireNoInternalText(t, p, "maintenance", "503", strings.TrimPrefix(front.URL, "http://"))

	// The endpoint answers again; the gateway tries it after its pause
	// (Retry-After), so a person who reloads gets the page, still signed in.
	down.Store(false)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		s := waitFor(t, ctx, "a page after reloading", func(s browserState) bool {
			return strings.Contains(s.body, `"path"`) || strings.Contains(s.body, "Temporarily unavailable")
		})
		if strings.Contains(s.body, `"path"`) {
			if s.loc != w.gw.base+"/reports?again" || !strings.Contains(s.body, "X-Forwarded-Access-Token") {
				t.Fatalf("after reloading: at %s showing:\n%s", s.loc, s.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %q 30 s after the token endpoint came back", s.body)
		}
	}
}

// TestBrowserPagesChooserEachLink: a route with an OpenID Connect IdP and
// a SAML IdP and no default_idp shows the chooser. Each of its links, in a
// browser of its own, leads to that IdP's own login form, and signing in
// there lands on the page first asked for, signed in through that IdP.
func TestBrowserPagesChooserEachLink(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	sp, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	// Another address than at the OpenID provider: one person with two
	// accounts, so that JIT creates both.
	corpPerson := samlPerson
	corpPerson.Email = "ada@corp.example"
	sp.AddUser(samltest.Okta("ada", "ada-pw", corpPerson))
	idps := fmt.Sprintf("\t\tidp test oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t}\n",
		w.idp.Issuer, clientID, clientSecret) +
		fmt.Sprintf("\t\tidp corp saml {\n\t\t\tmetadata_url %s\n\t\t\tpreset okta\n\t\t\tjit\n\t\t}\n", sp.MetadataURL())
	w.gw.start(w.gw.caddyfile(idps, fmt.Sprintf("%s {\n\tsso test corp\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())))
	metadata := newBrowser(t).get(w.gw.base + "/.sso/saml/corp/metadata")
	if err := sp.RegisterServiceProvider([]byte(readBody(t, metadata))); err != nil {
		t.Fatal(err)
	}

	page := w.gw.base + "/app/page?x=1"
	for i, tc := range []struct {
		name, login, email string
	}{
		{"test", w.idp.Issuer + oidctest.PathAuthorize, "ada@example.com"},
		{"corp", sp.URL, "ada@corp.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newChromium(t)
			statuses := recordResponses(t, ctx)
			if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
				t.Fatal(err)
			}
			p := waitForTitle(t, ctx, "Sign in")
			statuses.requireStatus(t, page, http.StatusOK)
			if !strings.Contains(p.Body, "Choose how to sign in.") {
				t.Errorf("the chooser does not ask to choose:\n%s", p.Body)
			}
			var names []string
			for _, l := range p.Links {
				names = append(names, l.Text)
			}
			if !slices.Equal(names, []string{"test", "corp"}) {
				t.Fatalf("the chooser shows %q, want [test corp]", names)
			}
			if want := w.gw.base + "/.sso/login?idp=" + tc.name + "&return_to=%2Fapp%2Fpage%3Fx%3D1"; p.Links[i].Href != want {
				t.Errorf("link %s leads to %s, want %s", tc.name, p.Links[i].Href, want)
			}

			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf("li:nth-child(%d) a", i+1)))); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, tc.name+"'s login form", func(s browserState) bool { return s.idpAsksForPassword(tc.login) })
			if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
				t.Fatal(err)
			}
			body, _ := waitForPage(t, ctx, page)
			e := echoOf(t, body)
			if e.Path != "/app/page?x=1" || e.header("X-Forwarded-Idp") != tc.name || e.header("X-Forwarded-Email") != tc.email {
				t.Errorf("the upstream saw %s via IdP %q as %q, want /app/page?x=1 via %s as %s",
					e.Path, e.header("X-Forwarded-Idp"), e.header("X-Forwarded-Email"), tc.name, tc.email)
			}
		})
	}
}
