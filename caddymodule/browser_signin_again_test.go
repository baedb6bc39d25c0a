package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// TestBrowserFormAfterSessionEnded: a person whose session ended while a
// form stood open submits it. They get the sign_in_again page (not the 401
// JSON a script gets), nothing reaches the app, and its Sign in link signs
// them in and brings them back to the form's page, where sending it again
// goes through.
func TestBrowserFormAfterSessionEnded(t *testing.T) {
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	const form = `<!doctype html><title>Note</title><form method="post" action="/save"><input name="note" value="hello"><button id="send" type="submit">Send</button></form>`
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\thandle /form {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n\t\trespond `%s`\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}\n}\n",
		w.gw.base, form, w.upstream.hostPort())
	w.start()
	ctx := newChromium(t)
	onForm := func(s browserState) bool { return s.loc == w.gw.base+"/form" && strings.Contains(s.body, "Send") }

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/form"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the form after signing in", onForm)

	// The session ends (an administrator revokes it) while the form stands.
	var revoked map[string]int
	w.gw.adminJSON(http.MethodPost, "/sso/users/"+userBySubject(t, "sub-ada").ID+"/sessions/revoke", http.StatusOK, &revoked)
	if revoked["revoked"] != 1 {
		t.Fatalf("revoked %v", revoked)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("send"))); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, ctx, "the sign_in_again page", func(s browserState) bool {
		return s.loc == w.gw.base+"/save" && strings.Contains(s.body, "Sign in again")
	})
	if !strings.Contains(s.body, "what you submitted was not sent") || strings.Contains(s.body, `"path"`) {
		t.Fatalf("after submitting without a session, at %s:\n%s", s.loc, s.body)
	}

	// Its link: sign in (the IdP may still know the person), back to the form.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href*="/.sso/login?return_to=%2Fform"]`))); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, ctx, "the form, or the IdP's login form", func(s browserState) bool {
		return onForm(s) || strings.Contains(s.body, "Password")
	})
	if !onForm(s) {
		if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the form after signing in again", onForm)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("send"))); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, ctx, "the app's answer to the form", func(s browserState) bool {
		return s.loc == w.gw.base+"/save" && strings.Contains(s.body, `"path"`)
	})
	if saw := echoOf(t, s.body); saw.Path != "/save" || saw.header("X-Forwarded-User") == "" {
		t.Errorf("the app got %s as %q", saw.Path, saw.header("X-Forwarded-User"))
	}
}
