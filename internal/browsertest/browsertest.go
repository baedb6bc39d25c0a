// Package browsertest starts the headless Chromium that the browser tests
// of caddymodule and of the demo drive, with the same flags for all.
package browsertest

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/internal/ci"
)

// New starts a headless Chromium with a fresh profile for one test and
// returns a context that drives one tab, of the given window size. Without
// Chromium the test is skipped, except in CI, where its absence is a
// failure.
func New(t testing.TB, width, height int) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if ci.Running() {
			t.Fatal("chromium is not installed; .ci/run installs it")
		}
		t.Skip("chromium is not installed (apt-get install -y chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// Chromium sends a cookie without SameSite on a cross-site
		// top-level POST within two minutes of its creation (the
		// "Lax-allowing-unsafe" grace). A SAML ACS POST right after the
		// IdP's login form would pass on that grace alone; this switch
		// removes it, so the tests pass only if the cookies' attributes
		// are right. caddymodule's TestBrowserHasNoLaxGrace checks that it
		// takes effect.
		chromedp.Flag("enable-features", "SameSiteDefaultChecksMethodRigorously"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, so a failure to launch is reported as such.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// SignInAtTestIdP fills in and submits the login form of the test IdPs
// (idp/oidc/oidctest and idp/saml/samltest share its element IDs), as a
// person does.
func SignInAtTestIdP(user, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login")),
	)
}

// Page is what the tab shows at one moment.
type Page struct {
	Location string `json:"loc"`
	Heading  string `json:"h1"` // the first h1's text, "" without one
	Body     string `json:"body"`
}

// Look reads the tab's location, heading and text in one evaluation. Read
// one by one, they can come from two documents when a page navigates on its
// own (a SAML form that posts itself), and a poller would pair one page's
// location with the next page's text.
func Look(ctx context.Context) (Page, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[Page](`({
		loc: location.href,
		h1: document.querySelector("h1") ? document.querySelector("h1").innerText : "",
		body: document.body ? document.body.innerText : "",
	})`))
}
