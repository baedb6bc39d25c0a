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

// TestBrowserFetchLoginReturnsToThePage: README, "For app developers": a
// single-page app's fetch gets, once the session has ended, 401 JSON whose
// login the app sends the person to. Signed in again, they come back to
// the page they were using (the fetch's Referer), not to a GET of the API
// endpoint the fetch POSTed to (raw JSON, or the app's 405).
func TestBrowserFetchLoginReturnsToThePage(t *testing.T) {
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	const page = `<!doctype html><title>Editor</title><p>the editor</p><p id="n"></p><button id="save">Save</button><script>
localStorage.loads = String(Number(localStorage.loads || 0) + 1);
document.getElementById("n").textContent = "load " + localStorage.loads;
document.getElementById("save").onclick = function () {
  fetch("/api/save", {method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/json"}, body: "{\"note\":\"hello\"}"})
    .then(function (r) { if (r.status === 401) { return r.json().then(function (j) { location.href = j.login; }); } });
};
</script>`
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\thandle /editor {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n\t\trespond `%s`\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}\n}\n",
		w.gw.base, page, w.upstream.hostPort())
	w.start()
	ctx := newChromium(t)
	onEditor := func(s browserState) bool {
		return s.loc == w.gw.base+"/editor" && strings.Contains(s.body, "the editor")
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/editor"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the editor after signing in", onEditor)

	var revoked map[string]int
	w.gw.adminJSON(http.MethodPost, "/sso/users/"+userBySubject(t, "sub-ada").ID+"/sessions/revoke", http.StatusOK, &revoked)
	if revoked["revoked"] != 1 {
		t.Fatalf("revoked %v", revoked)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("save"))); err != nil {
		t.Fatal(err)
	}
	// Back on the site: the editor loaded again, or another page of it.
	left := func(s browserState) bool {
		return strings.HasPrefix(s.loc, w.gw.base+"/") && !strings.Contains(s.loc, "/.sso/") &&
			(s.loc != w.gw.base+"/editor" || strings.Contains(s.body, "load 2"))
	}
	// The IdP's session is still alive: the login link comes straight back,
	// or shows the IdP's form.
	s := waitFor(t, ctx, "back on the site after the 401's login", func(s browserState) bool {
		return left(s) || strings.Contains(s.body, "Password")
	})
	if strings.Contains(s.body, "Password") {
		if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
			t.Fatal(err)
		}
		s = waitFor(t, ctx, "back on the site", left)
	}
	if !onEditor(s) {
		t.Errorf("after following the fetch's 401 login, the person is at %s, seeing:\n%.300s\nwant the page they were using, %s/editor (the fetch's Referer)", s.loc, s.body, w.gw.base)
	}
}
