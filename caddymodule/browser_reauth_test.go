package caddymodule_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// TestBrowserReauthBeforeSensitiveAction: a signed-in person follows the
// app's "change settings" link, /.sso/login?reauth=1&return_to=/settings.
// Although the IdP still has their session, its password form appears
// again; they type the password and land on /settings, as the app asked.
func TestBrowserReauthBeforeSensitiveAction(t *testing.T) {
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	const home = `<!doctype html><title>Home</title><a id="settings" href="/.sso/login?reauth=1&amp;return_to=/settings">Change settings</a>`
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\thandle /home {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n\t\trespond `%s`\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}\n}\n",
		w.gw.base, home, w.upstream.hostPort())
	w.start()
	ctx := newChromium(t)
	onHome := func(s browserState) bool {
		return s.loc == w.gw.base+"/home" && strings.Contains(s.body, "Change settings")
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/home"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the app's home page after signing in", onHome)

	// The IdP has a session: an ordinary sign-in would not ask again.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("settings"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the IdP's password form again", func(s browserState) bool { return s.idpAsksForPassword(w.idp.Issuer) })
	if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, ctx, "the settings page", func(s browserState) bool {
		return s.loc == w.gw.base+"/settings" && strings.Contains(s.body, `"path"`)
	})
	if saw := echoOf(t, s.body); saw.Path != "/settings" || saw.header("X-Forwarded-User") == "" {
		t.Errorf("the app got %s as %q", saw.Path, saw.header("X-Forwarded-User"))
	}
}
