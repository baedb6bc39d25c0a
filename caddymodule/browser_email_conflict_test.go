package caddymodule_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/internal/browsertest"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// emailConflictMessage is what the email_conflict page tells the person
// (provision.Denial.Message): no administrator operation links accounts,
// so it promises none; the administrator resolves it in the data
// (docs/scim.md, Conflicts).
const emailConflictMessage = "Your email address already belongs to another account. Ask your administrator, who can resolve it."

// TestBrowserPagesEmailConflict: two accounts of one IdP, different
// subjects, the same email address, which the IdP does not vouch for for
// the second. Ada signs in first and JIT creates her; then, in Chromium,
// the second account signs in at the IdP's form. JIT never links accounts
// by email (link_by_email is off), and an unverified address is not taken
// from its holder (a verified one would be: the IdP gave it to another of
// its users), so the gateway refuses it with the email_conflict page: 403 at the callback,
// the title "Access denied", the message above, the reference code, no
// link or button (nothing the person can do here resolves it), and
// nothing internal (the subjects, Ada's user ID). A new visit is refused
// the same way, and Ada's account is untouched.
func TestBrowserPagesEmailConflict(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n\t\t\tallow_unverified_email\n")
	w.idp.AddUser("ada2", "ada2-pw", map[string]any{
		"sub": "sub-ada-second", "given_name": "Ada", "family_name": "Byron",
		"email": "ada@example.com", "email_verified": false,
	})
	w.start()
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	ada := userBySubject(t, "sub-ada")

	ctx := newChromium(t)
	statuses := recordResponses(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/reports"), browsertest.SignInAtTestIdP("ada2", "ada2-pw")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, ctx, "Access denied")
	if !strings.HasPrefix(p.Loc, w.gw.base+"/.sso/oidc/test/callback?") {
		t.Errorf("the page is at %s, want the callback", p.Loc)
	}
	statuses.requireStatus(t, p.Loc, http.StatusForbidden)
	if !strings.Contains(p.Body, emailConflictMessage) {
		t.Errorf("the page does not say %q:\n%s", emailConflictMessage, p.Body)
	}
	if strings.Contains(p.Body, "link") {
		t.Errorf("the page speaks of linking accounts, which no administrator operation does:\n%s", p.Body)
	}
	if p.Code != provision.ReasonEmailConflict || !strings.Contains(p.Body, "Reference: "+provision.ReasonEmailConflict) {
		t.Errorf("reference %q, want %s:\n%s", p.Code, provision.ReasonEmailConflict, p.Body)
	}
	controls, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("a, button, form, input").length`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Links) != 0 || controls != 0 {
		t.Errorf("the page has links %+v and %d controls, want none", p.Links, controls)
	}
	requireNoInternalText(t, p, ada.ID, "sub-ada-second", "ada2", "Byron")
	if n := len(storedSessions(t)); n != 1 {
		t.Errorf("gateway sessions: %d, want Ada's only", n)
	}
	if got := auditReasons(t, store.EventJITConflict); !slices.Equal(got, []string{provision.ReasonEmailConflict}) {
		t.Errorf("%s events %v, want one %s", store.EventJITConflict, got, provision.ReasonEmailConflict)
	}

	// A new visit: the IdP still has the second account's session, and
	// the gateway refuses it again rather than letting it in.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/again")); err != nil {
		t.Fatal(err)
	}
	if p := waitForTitle(t, ctx, "Access denied"); p.Code != provision.ReasonEmailConflict {
		t.Errorf("the next visit: reference %q, want %s", p.Code, provision.ReasonEmailConflict)
	}
	if u := userBySubject(t, "sub-ada"); u.ID != ada.ID || u.LastName != "Lovelace" || u.Email != "ada@example.com" || !u.Active {
		t.Errorf("Ada's account after the refused sign-ins: %+v", u)
	}
}
