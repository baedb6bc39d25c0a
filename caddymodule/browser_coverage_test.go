package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// These tests drive in Chromium the pages that other tests reach only with
// a plain HTTP client: the IdP chooser, and the pages that POST a message
// to an IdP (an OIDC sign-out's id_token_hint, a SAML AuthnRequest with the
// POST binding), both with script on and with script off. A person whose
// browser runs no script must still get through, by the pages' visible
// Submit buttons.

// noscriptLine is what the gateway's POST pages (idp.WritePostForm) show a
// browser without script.
const noscriptLine = "JavaScript is off: press Submit to continue."

// disableScript turns script off in the tab, for this page and every page
// after it, as a person who switched JavaScript off has it.
func disableScript(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
}

// echoOf decodes the upstream's echo, which the browser shows as text.
func echoOf(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("the page is not the upstream's echo: %v:\n%s", err, body)
	}
	return e
}

// submitButtonShown reports whether the element with the ID is rendered
// and not hidden: the POST pages' script hides the button, so with script
// off a person must see it to go on.
func submitButtonShown(t *testing.T, ctx context.Context, id string) bool {
	t.Helper()
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(() => { const b = document.getElementById(%q); return !!b && getComputedStyle(b).visibility === "visible" && b.getClientRects().length > 0 })()`, id)))
	if err != nil {
		t.Fatal(err)
	}
	return shown
}

// TestBrowserCoverageIdPChooser: on a route with two IdPs a person who
// opens a page sees a chooser listing both, clicks the second, signs in at
// its IdP and lands on the page first asked for (query included), signed
// in through that IdP, not the first.
func TestBrowserCoverageIdPChooser(t *testing.T) {
	w := newTwoIdPWorld(t)
	w.gw.start(w.twoIdPCaddyfile("sso test other"))
	ctx := newChromium(t)

	page := w.gw.base + "/app/page?x=1"
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("li a"))); err != nil {
		t.Fatal(err)
	}
	if title, _ := chromedp.Run(ctx, chromedp.Title()); title != "Sign in" {
		t.Errorf("chooser title %q, want Sign in", title)
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if !strings.Contains(body, "Choose how to sign in.") {
		t.Errorf("the chooser does not ask the person to choose:\n%s", body)
	}
	// What the person sees: the links' text, in the order given in the
	// Caddyfile.
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("li a"), a => a.innerText)`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"test", "other"}) {
		t.Fatalf("the chooser shows %q, want [test other]", names)
	}

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("li:nth-child(2) a")),
		browsertest.SignInAtTestIdP("ada", "ada-pw"),
	); err != nil {
		t.Fatal(err)
	}
	body, _ = waitForPage(t, ctx, page)
	e := echoOf(t, body)
	if e.Path != "/app/page?x=1" || e.header("X-Forwarded-Idp") != "other" || e.header("X-Forwarded-Email") != "ada@example.com" {
		t.Errorf("the upstream saw %s via IdP %q as %q, want /app/page?x=1 via other as ada@example.com",
			e.Path, e.header("X-Forwarded-Idp"), e.header("X-Forwarded-Email"))
	}
}

// TestBrowserCoverageOIDCSignOutWithoutScript signs out of an OIDC site
// with script off: the sign-out page's form is a plain form, and the page
// that POSTs id_token_hint to the IdP, whose script would submit it, shows
// its Submit button and a line saying to press it. Pressing it ends the
// IdP's session with a POST that carries the hint.
func TestBrowserCoverageOIDCSignOutWithoutScript(t *testing.T) {
	w := localhostOIDCWorld(t)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	if w.idp.SessionID("ada") == "" {
		t.Fatal("no IdP session after signing in")
	}

	disableScript(t, ctx)
	clickSignOut(t, ctx, w.gw.base)
	// The sign-out POST was answered with the page that goes on to the
	// IdP; without script it stays there until the person presses Submit.
	s := waitFor(t, ctx, "the page that posts to the IdP", func(s browserState) bool {
		return strings.Contains(s.body, noscriptLine)
	})
	if s.loc != w.gw.base+"/.sso/logout" {
		t.Errorf("the page posting to the IdP is at %s, want the sign-out endpoint", s.loc)
	}
	if !submitButtonShown(t, ctx, "sso-post-submit") {
		t.Fatal("without script the Submit button is not shown")
	}
	if n := len(w.idp.EndSessionRequests()); n != 0 {
		t.Fatalf("the IdP's end_session was reached %d times before Submit was pressed", n)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("sso-post-submit"))); err != nil {
		t.Fatal(err)
	}

	// The IdP returns the browser to the site, whose sign-in asks for the
	// password: the IdP session is gone.
	idpLogin := w.idp.Issuer + oidctest.PathAuthorize
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(idpLogin) })
	reqs := w.idp.EndSessionRequests()
	if len(reqs) != 1 {
		t.Fatalf("the IdP's end_session endpoint was reached %d times, want 1", len(reqs))
	}
	if reqs[0].Method != http.MethodPost || reqs[0].Params.Get("id_token_hint") == "" {
		t.Errorf("end_session got %s %v, want a POST with id_token_hint", reqs[0].Method, reqs[0].Params)
	}
	if sid := w.idp.SessionID("ada"); sid != "" {
		t.Errorf("the IdP session %s survived the sign-out", sid)
	}
	nextVisitAsksForPassword(t, ctx, w.gw.base, idpLogin)
}

// samlPostWorld is a SAML world on http://localhost whose AuthnRequests go
// signed, by the POST binding: the gateway answers the sign-in with a page
// whose form (crewjam/saml's) carries the request to the IdP.
func samlPostWorld(t *testing.T) *samlWorld {
	t.Helper()
	return localhostSAMLWorld(t, "\t\t\trequest_binding post\n\t\t\tsign_requests\n", nil)
}

// TestBrowserCoverageSAMLPostBinding signs in over SAML with the POST
// binding and signed AuthnRequests. With script on, the gateway's page
// submits itself: the browser POSTs (never GETs) the IdP's SSO URL and
// lands on the page asked for. With script off, the page shows its Submit
// button and the line saying to press it; the person presses it, signs in,
// presses the IdP's own Continue buttons (samltest's resume form and
// crewjam's response form, which also submit by script) and lands.
func TestBrowserCoverageSAMLPostBinding(t *testing.T) {
	const path = "/reports?year=2026"

	t.Run("script on", func(t *testing.T) {
		w := samlPostWorld(t)
		ctx := newChromium(t)
		methods := recordRequests(t, ctx, w.idp.SSOURL())
		err := chromedp.Do(ctx,
			chromedp.Navigate(w.gw.base+path),
			browsertest.SignInAtTestIdP("ada", "ada-pw"),
		)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := waitForPage(t, ctx, w.gw.base+path)
		if e := echoOf(t, body); e.Path != path || e.header("X-Forwarded-Email") != "ada@example.com" {
			t.Errorf("the upstream saw %s as %q, want %s as ada@example.com", e.Path, e.header("X-Forwarded-Email"), path)
		}
		// The request went by the POST binding: with the redirect binding
		// the sign-in works too, but by a GET.
		if got := methods(); len(got) == 0 || slices.ContainsFunc(got, func(m string) bool { return m != http.MethodPost }) {
			t.Errorf("the browser reached the IdP's SSO URL by %v, want POSTs only", got)
		}
	})

	t.Run("script off", func(t *testing.T) {
		w := samlPostWorld(t)
		ctx := newChromium(t)
		disableScript(t, ctx)
		if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+path)); err != nil {
			t.Fatal(err)
		}
		waitVisible(t, ctx, "the AuthnRequest page's Submit button", chromedp.ID("SAMLSubmitButton"))
		if body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); !strings.Contains(body, noscriptLine) {
			t.Errorf("the AuthnRequest page does not tell the person to press Submit:\n%s", body)
		}
		if !submitButtonShown(t, ctx, "SAMLSubmitButton") {
			t.Fatal("without script the AuthnRequest page's Submit button is not shown")
		}
		if n := w.idp.Requests(samltest.PathSSO); n != 0 {
			t.Fatalf("the IdP's SSO URL was reached %d times before Submit was pressed", n)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("SAMLSubmitButton"))); err != nil {
			t.Fatal(err)
		}
		waitVisible(t, ctx, "the IdP's login form", chromedp.ID("username"))
		if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
			t.Fatal(err)
		}
		// samltest re-posts the AuthnRequest after its login form.
		waitVisible(t, ctx, "samltest's Continue button", chromedp.ID("continue"))
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("continue"))); err != nil {
			t.Fatal(err)
		}
		// crewjam's form posting the Response to the site's ACS.
		response := chromedp.CSS("#SAMLResponseForm #SAMLSubmitButton")
		waitVisible(t, ctx, "the IdP's Response form's Continue button", response)
		if err := chromedp.Do(ctx, chromedp.Click(response)); err != nil {
			t.Fatal(err)
		}
		body, _ := waitForPage(t, ctx, w.gw.base+path)
		if e := echoOf(t, body); e.Path != path || e.header("X-Forwarded-Email") != "ada@example.com" {
			t.Errorf("the upstream saw %s as %q, want %s as ada@example.com", e.Path, e.header("X-Forwarded-Email"), path)
		}
	})
}

// recordRequests records the method of every request the tab sends to
// rawURL (query ignored) from now on, and returns a func that lists them.
func recordRequests(t *testing.T, ctx context.Context, rawURL string) func() []string {
	t.Helper()
	var (
		mu      sync.Mutex
		methods []string
	)
	listen, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		defer once.Do(func() { close(started) }) // when Run fails early
		_, _ = chromedp.Run(listen, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			events := cdp.Events(ctx, tgt, network.RequestWillBeSent)
			once.Do(func() { close(started) })
			for ev, err := range events {
				if err != nil {
					return err
				}
				if u, _, _ := strings.Cut(ev.Request.URL, "?"); u == rawURL {
					mu.Lock()
					methods = append(methods, ev.Request.Method)
					mu.Unlock()
				}
			}
			return nil
		}))
	}()
	<-started
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(methods)
	}
}

// waitVisible waits up to 20 seconds for the element, and otherwise fails
// the test with where the browser is and what it shows: a page whose script
// ran (or whose button is missing) moves on or never shows it.
func waitVisible[S chromedp.Selectable](t *testing.T, ctx context.Context, what string, sel S) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(sel)); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("waiting for %s: %v; the browser is at %s showing:\n%.600s", what, err, loc, body)
	}
}
