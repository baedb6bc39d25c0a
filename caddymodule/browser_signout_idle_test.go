package caddymodule_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	crewjam "github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// These tests drive in Chromium a sign-out after the session ended by
// idle_timeout (signout_ended_test.go checks the same at the HTTP level):
// a person leaves the app's tab open, comes back later and clicks the
// app's "Sign out" link. The gateway's session has ended, but the IdP's
// has not; the sign-out must still end the IdP's, or the next person at
// that computer is signed straight back in without a password
// (docs/security.md). As in browser_logout_test.go the site is
// http://localhost and the IdPs are on 127.0.0.1.

// idleTimeout is short so that the tests wait seconds; the sign-out comes
// after idleWait.
const (
	idleTimeout = "2s"
	idleWait    = 3 * time.Second
)

// idleSessionBlock is the sso block's session setting of these tests.
const idleSessionBlock = "\t\tsession {\n\t\t\tidle_timeout " + idleTimeout + "\n\t\t}\n"

// appWithSignOutLink is the site: the gateway in front of the echoing
// upstream, and a page of the app (/app.html, behind the gateway too) with
// a "Sign out" link to the gateway's sign-out page, as an app has.
func appWithSignOutLink(base, upstream string) string {
	return fmt.Sprintf("%s {\n\tsso test\n\thandle /app.html {\n\t\theader Content-Type \"text/html; charset=utf-8\"\n"+
		"\t\trespond `<!doctype html><title>App</title><p>The app.</p><a id=\"signout\" href=\"/.sso/logout\">Sign out</a>` 200\n"+
		"\t}\n\treverse_proxy %s\n}\n", base, upstream)
}

// leaveIdleThenSignOut opens the app's page while signed in, waits past
// idle_timeout without a request, then clicks the page's "Sign out" link
// and the confirmation page's button, as a person back at the computer
// does.
func leaveIdleThenSignOut(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/app.html"), chromedp.WaitVisible(chromedp.ID("signout"))); err != nil {
		t.Fatal(err)
	}
	if n := len(storedSessions(t)); n != 1 {
		t.Fatalf("gateway sessions before the wait: %d, want 1", n)
	}
	time.Sleep(idleWait)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("signout"))); err != nil {
		t.Fatal(err)
	}
	if p := waitForTitle(t, ctx, "Sign out"); p.Loc != base+"/.sso/logout" {
		t.Fatalf("the app's Sign out link led to %s", p.Loc)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("submit"))); err != nil {
		t.Fatal(err)
	}
}

// requireSignedOutHere checks the gateway's side: the stored session has
// ended (it stays stored until the sweep, for a second click). (Whether SignOut judged it ended before, and so audited no
// session.logged_out, depends on the stored last-seen time's allowed lag,
// two minutes by default, not on idle_timeout alone: session.Manager.Ends.)
func requireSignedOutHere(t *testing.T) {
	t.Helper()
	if n := len(liveSessions(t)); n != 0 {
		t.Errorf("gateway sessions live after signing out: %d, want 0", n)
	}
}

// TestBrowserOIDCSignOutAfterIdleTimeout: after idle_timeout the sign-out
// button still leads to the OpenID provider's end_session_endpoint, by a
// POST with the session's ID token as id_token_hint; the OP ends its
// session and returns the browser to the site, whose sign-in then asks for
// the password.
func TestBrowserOIDCSignOutAfterIdleTimeout(t *testing.T) {
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start(w.gw.caddyfile(o.IdPConfig()+idleSessionBlock, appWithSignOutLink(w.gw.base, w.upstream.hostPort())))
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	sid := w.idp.SessionID("ada")
	if sid == "" {
		t.Fatal("the OP has no session for ada after the sign-in")
	}

	leaveIdleThenSignOut(t, ctx, w.gw.base)
	idpLogin := w.idp.Issuer + oidctest.PathAuthorize
	waitFor(t, ctx, "the OP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(idpLogin) })
	reqs := w.idp.EndSessionRequests()
	if len(reqs) != 1 {
		t.Fatalf("the OP's end_session endpoint was reached %d times, want 1", len(reqs))
	}
	if reqs[0].Method != http.MethodPost || reqs[0].Params.Get("id_token_hint") == "" ||
		reqs[0].Params.Get("post_logout_redirect_uri") != w.gw.base+"/" {
		t.Errorf("end_session got %s %v, want a POST with id_token_hint and the site's post_logout_redirect_uri", reqs[0].Method, reqs[0].Params)
	}
	// The hint is the ID token of ada's sign-in, in the OP's session.
	if claims := jwtClaims(t, reqs[0].Params.Get("id_token_hint")); claims["sub"] != "sub-ada" || claims["sid"] != sid {
		t.Errorf("id_token_hint names sub %v, sid %v; want sub-ada and the OP's session %s", claims["sub"], claims["sid"], sid)
	}
	if left := w.idp.SessionID("ada"); left != "" {
		t.Errorf("the OP's session %s outlived the sign-out", left)
	}
	requireSignedOutHere(t)
	nextVisitAsksForPassword(t, ctx, w.gw.base, idpLogin)
}

// jwtClaims reads the payload of a JWT, unverified (the OP verified it).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestBrowserSAMLSignOutAfterIdleTimeout: after idle_timeout the sign-out
// button still sends a LogoutRequest (the session's NameID and
// SessionIndex) to the SAML IdP, here over the HTTP-POST binding, so
// that the gateway's page auto-submits it; the IdP ends its session and
// answers with a LogoutResponse to the site, whose sign-in then asks for
// the password.
func TestBrowserSAMLSignOutAfterIdleTimeout(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n")
	w.idp.SetLogoutBindings(crewjam.HTTPPostBinding)
	w.gw.base = fmt.Sprintf("http://localhost:%d", w.gw.port)
	block := fmt.Sprintf("\t\tidp test saml {\n\t\t\tmetadata_url %s\n%s\t\t}\n", w.idp.MetadataURL(), w.idpBlock)
	w.gw.start(w.gw.caddyfile(block+idleSessionBlock, appWithSignOutLink(w.gw.base, w.upstream.hostPort())))
	if err := w.idp.RegisterServiceProvider([]byte(w.spMetadata())); err != nil {
		t.Fatal(err)
	}
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	if n := w.idp.SessionCount(); n != 1 {
		t.Fatalf("IdP sessions after sign-in: %d", n)
	}
	nav := recordNavigations(t, ctx)

	leaveIdleThenSignOut(t, ctx, w.gw.base)
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.SSOURL()) })
	requireLogoutRequestPosted(t, w, nav)
	requireSignedOutHere(t)
	nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.SSOURL())
}
