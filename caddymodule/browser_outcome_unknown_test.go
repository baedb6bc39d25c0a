package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestBrowserPagesSignInOutcomeUnknown: the connection to PostgreSQL is
// lost while the sign-in's COMMIT is on its way, and the server commits
// it. Chromium shows the store_outcome_unknown page at the callback: 503,
// "Sign-in is unavailable", a message that says the sign-in may or may
// not have been saved and that this browser is not signed in (never
// "Nothing was changed": the user and the session exist), the reference
// store_outcome_unknown, and no link or button. What it asks, trying
// again, works: a new visit signs in (the IdP still has the person's
// session) and lands on the page.
func TestBrowserPagesSignInOutcomeUnknown(t *testing.T) {
	_, own := pgtest.OwnDatabase(t)
	// Trusted over the cluster's unix socket; the proxy cuts the COMMIT of
	// the first transaction that writes a session (a sign-in).
	cut := pgtest.NewCommitCutter(t, own, []byte("INSERT INTO sso_sessions"))
	cut.Arm()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("COMMITs the proxy cut: %d", cut.Cuts())
		}
	})
	dsn := cut.DSN

	w := newOIDCWorld(t, "\t\t\tjit\n")
	o := caddytest.OIDC{IdP: w.idp, GW: w.gw.Gateway, IdPBlock: w.idpBlock}
	w.gw.start("{\n" + w.gw.globalOptions() + "\tsso {\n\t\tstore postgres " + dsn + "\n" + o.IdPConfig() + "\t}\n}\n\n" + w.sites)
	browser := newChromium(t)
	statuses := recordResponses(t, browser)

	if err := chromedp.Do(browser, chromedp.Navigate(w.gw.base+"/reports"), browsertest.SignInAtTestIdP("ada", "ada-pw")); err != nil {
		t.Fatal(err)
	}
	p := waitForTitle(t, browser, "Sign-in is unavailable")
	if cut.Cuts() != 1 {
		t.Fatal("the page came without the COMMIT being cut: this test proves nothing")
	}
	if !strings.HasPrefix(p.Loc, w.gw.base+"/.sso/oidc/test/callback?") {
		t.Errorf("the page is at %s, want the callback", p.Loc)
	}
	statuses.requireStatus(t, p.Loc, http.StatusServiceUnavailable)
	for _, want := range []string{"Your sign-in may or may not have been saved, and this browser is not signed in.", "Try again"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the page does not say %q:\n%s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, "Nothing was changed") {
		t.Errorf("the page says nothing was changed, which the lost COMMIT may have:\n%s", p.Body)
	}
	if p.Code != ssogateway.CodeStoreOutcomeUnknown || !strings.Contains(p.Body, "Reference: "+ssogateway.CodeStoreOutcomeUnknown) {
		t.Errorf("reference %q, want %s:\n%s", p.Code, ssogateway.CodeStoreOutcomeUnknown, p.Body)
	}
	controls, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll("a, button, form, input").length`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Links) != 0 || controls != 0 {
		t.Errorf("the page has links %+v and %d controls, want none", p.Links, controls)
	}
	requireNoInternalText(t, p, "postgres", "commit", "conn", "sso_", cut.Addr)
	// The server committed: Ada's user and the session exist, though this
	// browser has no cookie of it.
	ada := userBySubject(t, "sub-ada")
	if n := len(storedSessions(t)); n != 1 {
		t.Errorf("stored sessions after the lost COMMIT: %d, want the one it carried", n)
	}

	// Trying again, as the page says: the IdP still has Ada's session,
	// so the next visit lands on the page, signed in.
	if err := chromedp.Do(browser, chromedp.Navigate(w.gw.base+"/reports")); err != nil {
		t.Fatal(err)
	}
	body, _ := waitForPage(t, browser, w.gw.base+"/reports")
	if e := echoOf(t, body); e.header("X-Forwarded-User") != ada.ID || e.header("X-Forwarded-Email") != "ada@example.com" {
		t.Errorf("after trying again the upstream saw user %q, %q; want Ada (%s), the user the lost COMMIT created",
			e.header("X-Forwarded-User"), e.header("X-Forwarded-Email"), ada.ID)
	}
	var created int
	view(t, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: store.EventUserCreated, Limit: 10})
		created = len(events)
		return err
	})
	if created != 1 {
		t.Errorf("user.created events: %d, want 1 (the second sign-in found Ada)", created)
	}
}
