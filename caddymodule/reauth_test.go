package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/store"
)

// sessionCookies are the values of the browser's cookies for base, joined:
// what a new session changes.
func sessionCookies(b *browser, base string) string {
	u, _ := url.Parse(base)
	var vals []string
	for _, c := range b.jar.Cookies(u) {
		vals = append(vals, c.Name+"="+c.Value)
	}
	return strings.Join(vals, ";")
}

// idpFormShown opens rawURL and reports whether the browser ended at the
// test IdP's password form.
func idpFormShown(t *testing.T, b *browser, rawURL string) bool {
	t.Helper()
	resp := b.get(rawURL)
	body := readBody(t, resp)
	return strings.Contains(body, `id="username"`) && strings.Contains(body, `id="password"`)
}

// TestReauthOIDC: through Caddy and the real test IdP, which keeps its own
// session. An ordinary /.sso/login signs a signed-in person in again
// without the IdP's form; /.sso/login?reauth=1 brings the form back, and
// after the password the person lands on return_to with a new session. A
// script's request gets the 401 whose login link keeps reauth. An IdP that
// ignores prompt=login and answers from an old session is refused with
// reauth_not_fresh, and the person stays signed in as before.
func TestReauthOIDC(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	// The IdP session began five minutes ago.
	w.idp.SetClock(func() time.Time { return time.Now().Add(-5 * time.Minute) })
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	w.idp.SetClock(time.Now)

	if idpFormShown(t, b, w.gw.base+"/.sso/login?return_to=/") {
		t.Fatal("an ordinary sign-in showed the IdP's form although the IdP has a session")
	}
	before := sessionCookies(b, w.gw.base)
	if !idpFormShown(t, b, w.gw.base+"/.sso/login?reauth=1&return_to=/settings") {
		t.Fatal("/.sso/login?reauth=1 did not bring back the IdP's password form")
	}
	resp := b.signIn(w.gw.base+"/.sso/login?reauth=1&return_to=/settings", "ada", "ada-pw")
	if saw := upstreamSaw(t, resp); saw.Path != "/settings" || saw.header("X-Forwarded-User") == "" {
		t.Fatalf("after re-authenticating: the app got %s as %q", saw.Path, saw.header("X-Forwarded-User"))
	}
	if after := sessionCookies(b, w.gw.base); after == before {
		t.Error("re-authenticating kept the session it began with")
	}
	for _, v := range []string{"0", "yes", ""} {
		if idpFormShown(t, b, w.gw.base+"/.sso/login?reauth="+v+"&return_to=/") {
			t.Errorf("reauth=%q re-authenticated", v)
		}
	}

	// A script asking for it gets the 401 with a login link that keeps it.
	resp = b.get(w.gw.base+"/.sso/login?reauth=true&return_to=/settings", "Accept", "*/*", "Sec-Fetch-Mode", "cors")
	readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "reauth=1") {
		t.Errorf("fetch of /.sso/login?reauth=true: %s, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	// An IdP that ignores prompt=login: its session (re-authenticated
	// above, so made old again) answers without the form.
	w.idp.SetClock(func() time.Time { return time.Now().Add(-5 * time.Minute) })
	b.signIn(w.gw.base+"/.sso/login?reauth=1", "ada", "ada-pw").Body.Close()
	w.idp.SetClock(time.Now)
	w.idp.SetIgnoreReauth(true)
	before = sessionCookies(b, w.gw.base)
	resp = b.get(w.gw.base + "/.sso/login?reauth=1&return_to=/settings")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, idp.CodeReauthNotFresh) || strings.Contains(body, `"headers"`) {
		t.Fatalf("re-authentication the IdP ignored: %s\n%s", resp.Status, body)
	}
	// The page says what happened, and its link asks for the
	// re-authentication again rather than an ordinary sign-in.
	if !strings.Contains(body, "signed you in without asking") || !strings.Contains(body, "login?idp=test&amp;reauth=1") {
		t.Errorf("the reauth_not_fresh page does not explain it or lacks the link to try again:\n%s", body)
	}
	if sessionCookies(b, w.gw.base) != before {
		t.Error("the refused re-authentication changed the session")
	}
	upstreamSaw(t, b.get(w.gw.base+"/still-signed-in"))
	// Its login.failed event names the signed-in user, so that audit
	// --user shows the failed step-up (it named no one).
	var failed account.AuditPage
	w.gw.adminJSON(http.MethodGet, "/sso/audit?type="+store.EventLoginFailed+"&user="+userBySubject(t, "sub-ada").ID, http.StatusOK, &failed)
	// (Two: making the IdP's session old above was refused too.)
	if len(failed.Events) != 2 || failed.Events[0].Reason != idp.CodeReauthNotFresh || failed.Events[1].Reason != idp.CodeReauthNotFresh {
		t.Errorf("ada's login.failed events: %+v, want the two reauth_not_fresh ones", failed.Events)
	}
}

// TestReauthSAML: the same with SAML: ForceAuthn="true" brings the IdP's
// form back, and an IdP that ignores it is refused with reauth_not_fresh.
func TestReauthSAML(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	// The IdP session begins two minutes early (less than the three the
	// IdP allows a request's IssueInstant to be ahead): the SP refuses
	// that first answer as stale, but the IdP keeps the session.
	w.idp.SetClock(func() time.Time { return time.Now().Add(-2 * time.Minute) })
	b.samlSignIn(w.gw.base+"/", "ada", "ada-pw")
	w.idp.SetClock(time.Now)

	if p := b.samlSignIn(w.gw.base+"/.sso/login?return_to=/", "nobody", "wrong"); p.isIdPLogin() {
		t.Fatal("an ordinary sign-in showed the IdP's form although the IdP has a session")
	} else {
		p.saw(t)
	}
	if p := b.samlAutoSubmit(b.samlGet(w.gw.base + "/.sso/login?reauth=1&return_to=/settings")); !p.isIdPLogin() {
		t.Fatalf("/.sso/login?reauth=1 did not bring back the IdP's login form: %s", samlShort(p.Body))
	}
	if saw := b.samlSignIn(w.gw.base+"/.sso/login?reauth=1&return_to=/settings", "ada", "ada-pw").saw(t); saw.Path != "/settings" {
		t.Fatalf("after re-authenticating the app got %s", saw.Path)
	}

	// An IdP that ignores ForceAuthn, with a session two minutes old.
	w.idp.SetClock(func() time.Time { return time.Now().Add(-2 * time.Minute) })
	b.samlSignIn(w.gw.base+"/.sso/login?reauth=1", "ada", "ada-pw")
	w.idp.SetClock(time.Now)
	w.idp.SetIgnoreForceAuthn(true)
	p := b.samlSignIn(w.gw.base+"/.sso/login?reauth=1&return_to=/settings", "nobody", "wrong")
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, idp.CodeReauthNotFresh) {
		t.Fatalf("re-authentication the IdP ignored: %d\n%s", p.Status, samlShort(p.Body))
	}
	if saw := upstreamSaw(t, b.get(w.gw.base+"/still-signed-in")); saw.Path != "/still-signed-in" {
		t.Fatalf("after the refusal: %s", saw.Path)
	}
}

// TestReauthChooser: on a route with several IdPs, /.sso/login?reauth=1
// without idp= re-authenticates the person at the IdP they signed in with
// (the chooser's links would drop reauth); without a session it shows the
// chooser.
func TestReauthChooser(t *testing.T) {
	w := newTwoIdPWorld(t)
	w.gw.start(w.twoIdPCaddyfile("sso test other"))

	if body := readBody(t, newBrowser(t).get(w.gw.base+"/.sso/login?reauth=1&return_to=/settings")); len(chooserLink.FindAllString(body, -1)) != 2 {
		t.Fatalf("reauth without a session or idp: %s", body)
	}
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/.sso/login?idp=other&return_to=/", "ada", "ada-pw"))
	if !idpFormShown(t, b, w.gw.base+"/.sso/login?reauth=1&return_to=/settings") {
		t.Fatal("/.sso/login?reauth=1 on a chooser route did not bring back the IdP's password form")
	}
	saw := upstreamSaw(t, b.signIn(w.gw.base+"/.sso/login?reauth=1&return_to=/settings", "ada", "ada-pw"))
	if saw.Path != "/settings" || saw.header("X-Forwarded-Idp") != "other" {
		t.Fatalf("after re-authenticating: %s via %q", saw.Path, saw.header("X-Forwarded-Idp"))
	}
}
