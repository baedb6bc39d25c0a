package caddymodule_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newChromium starts a headless Chromium with a fresh profile for one test
// and returns a context that drives one tab. Without Chromium the test is
// skipped, except in CI, where its absence is a failure.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
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
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
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

// TestBrowserOIDCLogin signs in through a real browser: the protected page
// redirects to the provider's login form, the form is filled in and
// submitted, the provider redirects back, and the upstream's echo of the
// headers it received is read from the page.
func TestBrowserOIDCLogin(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	ctx := newChromium(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(w.gw.base+"/dashboard"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "ada"),
		chromedp.SendKeys(chromedp.ID("password"), "ada-pw"),
		chromedp.Click(chromedp.ID("login")),
	)
	if err != nil {
		t.Fatal(err)
	}
	// The click starts a chain of navigations (IdP, callback, the page);
	// poll until the browser settles on the page it first asked for.
	var body, loc string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		if loc == w.gw.base+"/dashboard" {
			if body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err == nil && strings.Contains(body, `"path"`) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if loc != w.gw.base+"/dashboard" {
		t.Errorf("browser ended at %q, want the page it asked for", loc)
	}
	for _, want := range []string{`"/dashboard"`, `"X-Forwarded-Email":["ada@example.com"]`, `"X-Forwarded-First-Name":["Ada"]`} {
		if !strings.Contains(body, want) {
			t.Errorf("upstream echo lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "sso_session") {
		t.Error("the session cookie reached the upstream")
	}
}
