// Package browsertest starts the headless Chromium that the browser tests
// of caddymodule, internal/clustertest and the demo drive, with the same
// flags for all, and holds the steps they share.
package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
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

// WaitFor polls the tab with Look until ok says the page is the one
// wanted, and fails the test when it is not within 30 s.
func WaitFor(t testing.TB, ctx context.Context, what string, ok func(Page) bool) Page {
	t.Helper()
	var p Page
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if look, err := Look(ctx); err == nil {
			if p = look; ok(p) {
				return p
			}
		}
	}
	t.Fatalf("waiting for %s: the browser is at %s showing %q:\n%s", what, p.Location, p.Heading, p.Body)
	return p
}

// DoubleClickSignOut opens the sign-out page at base and clicks its button
// twice, 150 ms apart, on a network slowed to 600 ms of latency: the second
// click leaves before the first answer arrives even when a loaded machine
// runs the page's timer late. The browser drops the first answer for the
// second's, whose POST finds the session ended (behind a load balancer,
// perhaps on another instance). It fails when the second click sends no
// POST, and returns, the network at its own speed again, once the tab
// follows the second answer (asks for anything but the sign-out), so that
// the test sees what it set out to: two POSTs that both left before any
// answer came (a second click after the first answer is the gateway
// test TestSecondClickAfterTheFirstAnswer's).
func DoubleClickSignOut(base string) chromedp.Action[chromedp.Void] {
	const doubleClick = `(() => { const b = document.getElementById("submit"); b.click(); setTimeout(() => b.click(), 150); return 1 })()`
	signOut := base + "/.sso/logout"
	return chromedp.Steps(
		chromedp.Navigate(signOut),
		chromedp.WaitVisible(chromedp.ID("submit")),
		latency(600),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			sent := chromedp.Events(ctx, network.RequestWillBeSent) // subscribed from here on
			if _, err := chromedp.EvaluateAsDevTools[int](doubleClick)(ctx, t); err != nil {
				return err
			}
			posts := 0
			for e, err := range sent {
				switch {
				case err != nil:
					return fmt.Errorf("waiting for the second sign-out answer (%d POSTs sent): %w", posts, err)
				case e.Request.Method == http.MethodPost && e.Request.URL == signOut:
					posts++
				case posts == 2 && !strings.HasPrefix(e.Request.URL, signOut):
					return nil
				}
			}
			return fmt.Errorf("the tab's events ended (%d sign-out POSTs sent)", posts)
		}),
		latency(0),
	)
}

// latency makes every request of the tab take ms milliseconds longer; 0
// restores the network's own speed.
func latency(ms float64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Latency: ms, DownloadThroughput: -1, UploadThroughput: -1}}})
		return err
	})
}
