package clustertest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
)

// chromiumDoubleClickOIDC signs in with Chromium through the balancer,
// double-clicks Sign out (browsertest.DoubleClickSignOut) so that the
// balancer sends the two POSTs to the two instances, and requires what a
// person sees on one instance (caddymodule's TestBrowserDoubleClickSignOut):
// the second answer, whose POST found the session another instance ended,
// goes on to the IdP's logout, so the tab ends at the IdP asking for the
// password. A copy of the cookie is refused on both instances at once,
// and signing in again gives a session both honour.
func chromiumDoubleClickOIDC(t *testing.T, c *cluster) {
	inOrder(t, func(try string) bool {
		user := "doubleclick" + try
		c.addOIDCUser(user)
		ctx := browsertest.New(t, 1000, 800)
		token, userID := chromiumSignIn(t, ctx, c, c.base+"/dash", user)

		answeredBy := signOutsAnswered(t, ctx)
		if err := chromedp.Do(ctx, browsertest.DoubleClickSignOut(c.base)); err != nil {
			t.Fatal(err)
		}
		if p := browsertest.WaitFor(t, ctx, "the IdP asking for the password after signing out", func(p browsertest.Page) bool {
			return idpAsksForPassword(p, c.oidc.Issuer) || p.Heading == signedOutHere
		}); p.Heading == signedOutHere {
			t.Fatalf("the tab shows %q at %s: the answer it followed did not go on to the IdP's logout, whose session lives on", p.Heading, p.Location)
		}
		refusedOnBoth(t, c, token)
		if !endedOnTheOther(t, c, answeredBy(), userID) {
			return false
		}

		// The IdP's session ended: the next visit asks for the password.
		if err := chromedp.Do(ctx, chromedp.Navigate(c.base+"/again")); err != nil {
			t.Fatal(err)
		}
		p := browsertest.WaitFor(t, ctx, "the IdP's login form or the app on the next visit", func(p browsertest.Page) bool {
			return idpAsksForPassword(p, c.oidc.Issuer) || strings.HasPrefix(p.Location, c.base+"/again")
		})
		if !idpAsksForPassword(p, c.oidc.Issuer) {
			t.Fatalf("the next visit was signed in without a password (the IdP's session outlived the sign-out): at %s", p.Location)
		}
		if err := chromedp.Do(ctx, browsertest.SignInAtTestIdP(user, user+"-pw")); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(t, ctx, "the app after signing in again", func(p browsertest.Page) bool {
			return strings.HasPrefix(p.Location, c.base+"/again") && strings.Contains(p.Body, user+"@example.com")
		})
		again := chromiumSessionCookie(t, ctx, c.base)
		if again == token {
			t.Fatal("signing in again kept the signed-out session's cookie")
		}
		honouredOnBoth(t, c, again)
		return true
	})
}

// chromiumSignIn signs user (password user-pw, email user@example.com) in
// from start, which ends at /dash, and returns the session's cookie, which
// both instances honour, and the user's ID.
func chromiumSignIn(t *testing.T, ctx context.Context, c *cluster, start, user string) (token, userID string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(start), browsertest.SignInAtTestIdP(user, user+"-pw")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, ctx, "the app after signing in", func(p browsertest.Page) bool {
		return strings.HasPrefix(p.Location, c.base+"/dash") && strings.Contains(p.Body, user+"@example.com")
	})
	token = chromiumSessionCookie(t, ctx, c.base)
	honouredOnBoth(t, c, token)
	return token, c.withCookie(t, "a", token).whoami(t)
}

// chromiumDoubleClickSAML is chromiumDoubleClickOIDC for a SAML session:
// the answer the tab follows goes on to the IdP's single logout, which
// ends the IdP's session, and the cookie is refused on both instances.
// The SP is registered at the IdP (the "shared keys" subtest).
func chromiumDoubleClickSAML(t *testing.T, c *cluster) {
	inOrder(t, func(try string) bool {
		user := "doubleclicksaml" + try
		c.saml.AddUser(samltest.Okta(user, user+"-pw", samltest.Person{ID: "saml-" + user,
			FirstName: "Double", LastName: "Click", Email: user + "@example.com"}))
		ctx := browsertest.New(t, 1000, 800)
		token, userID := chromiumSignIn(t, ctx, c, c.base+"/.sso/login?idp=saml&return_to=/dash", user)
		// Earlier subtests' IdP sessions live on (their browsers never signed
		// out): this sign-out must end one more.
		sessions, slo := c.saml.SessionCount(), c.saml.Requests(samltest.PathSLO)

		answeredBy := signOutsAnswered(t, ctx)
		if err := chromedp.Do(ctx, browsertest.DoubleClickSignOut(c.base)); err != nil {
			t.Fatal(err)
		}
		// After the IdP's logout the tab comes back and is sent to sign in,
		// at the default IdP (OIDC).
		if p := browsertest.WaitFor(t, ctx, "a login form after the IdP's single logout", func(p browsertest.Page) bool {
			return idpAsksForPassword(p, c.oidc.Issuer) || idpAsksForPassword(p, c.saml.URL) || p.Heading == signedOutHere
		}); p.Heading == signedOutHere {
			t.Fatalf("the tab shows %q at %s: the answer it followed did not go on to the IdP's single logout", p.Heading, p.Location)
		}
		refusedOnBoth(t, c, token)
		if !endedOnTheOther(t, c, answeredBy(), userID) {
			return false
		}
		if n, m := c.saml.SessionCount(), c.saml.Requests(samltest.PathSLO); n != sessions-1 || m <= slo {
			t.Errorf("after the double click: %d IdP sessions and %d SLO requests, want %d and more than %d", n, m, sessions-1, slo)
		}
		return true
	})
}

// chromiumSessionCookie returns the session cookie Chromium holds for
// base, failing the test without one.
func chromiumSessionCookie(t *testing.T, ctx context.Context, base string) string {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range res.Cookies {
		if ck.Name == "sso_session" {
			return ck.Value
		}
	}
	t.Fatal("Chromium holds no session cookie")
	return ""
}

// signOutsAnswered records which instance (X-Served-By) answered each of
// the tab's sign-out POSTs from now on, as Chromium received the answers,
// and returns a func that lists them in order.
func signOutsAnswered(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	var mu sync.Mutex
	posts := map[network.RequestID]bool{}
	var by []string
	answered := func(id network.RequestID, resp *network.Response) {
		if resp != nil && posts[id] {
			by = append(by, servedBy(resp.Headers))
		}
	}
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			// A 303's answer comes as the redirect of the request that
			// follows it, under the same ID.
			answered(e.RequestID, e.RedirectResponse)
			posts[e.RequestID] = e.Request.Method == http.MethodPost && strings.HasSuffix(e.Request.URL, "/.sso/logout")
		case *network.EventResponseReceived:
			answered(e.RequestID, e.Response)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(by)
	}
}

func servedBy(h network.Headers) string {
	for k, v := range h {
		if strings.EqualFold(k, "X-Served-By") {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// endedOnTheOther reports whether the answer the tab followed came from
// one instance (shown: the instances whose answers Chromium saw, the
// followed one last) while the other ended the session: its "signed out"
// line is there, the one instance of the cluster to write one. The first
// click's answer the browser drops, often before it arrives: the log says
// where its POST went. The two POSTs can reach the instances in the other
// order than sent (a loaded machine): then the followed answer is the one
// that ended the session, the case under test did not happen, and it
// reports false. Any other outcome fails the test: no line on either
// instance most of all, a sign-out audited but logged nowhere (one whose
// write's outcome was unknown logs it once too: session.SignOut, Flush).
func endedOnTheOther(t *testing.T, c *cluster, shown []string, userID string) bool {
	t.Helper()
	if len(shown) == 0 {
		t.Fatal("Chromium saw no answer to its sign-out POSTs")
	}
	followed := shown[len(shown)-1]
	// The instance that ended the session writes its line after the
	// commit the other's answer may already have read: a moment's wait.
	var signedOut map[string]int
	lines := 0
	for deadline := time.Now().Add(10 * time.Second); lines == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		signedOut = map[string]int{}
		for _, in := range c.names {
			signedOut[in] = c.inst[in].logged(t, "signed out", userID)
			lines += signedOut[in]
		}
	}
	if lines == 0 {
		t.Fatalf("the tab followed %s's answer (answers seen: %v), and no instance logged \"signed out\" within 10 s", followed, shown)
	}
	if len(signedOut) != 2 || lines != 1 {
		t.Fatalf("the tab followed %s's answer; \"signed out\" lines per instance: %v; want one, on the other instance", followed, signedOut)
	}
	if signedOut[followed] == 1 {
		t.Logf("the tab followed %s's answer (answers seen: %v), which ended the session (\"signed out\" lines: %v): the POSTs were handled in the other order than sent", followed, shown, signedOut)
		return false
	}
	return true
}

// inOrder runs a double-click sign-out (attempt, given a suffix that
// makes its user new) until its two POSTs are handled in the order sent,
// which is the case it tests; a few tries, as the order flips only on a
// loaded machine.
func inOrder(t *testing.T, attempt func(try string) bool) {
	t.Helper()
	const tries = 5
	for i := range tries {
		if attempt(strings.Repeat("x", i)) {
			return
		}
	}
	t.Fatalf("in %d tries the two sign-out POSTs were never handled in the order sent", tries)
}

// signedOutHere is the heading of the page a sign-out shows when it does
// not go on to an IdP's logout.
const signedOutHere = "Signed out"

// idpAsksForPassword: the tab shows the IdP's login form.
func idpAsksForPassword(p browsertest.Page, idpPrefix string) bool {
	return strings.HasPrefix(p.Location, idpPrefix) && strings.Contains(p.Body, "Password")
}

// honouredOnBoth fails the test unless both instances honour a copy of
// the session cookie token.
func honouredOnBoth(t *testing.T, c *cluster, token string) {
	t.Helper()
	for _, in := range c.names {
		if status, _, err := c.withCookie(t, in, token).api("/copy"); err != nil || status != http.StatusOK {
			t.Fatalf("the session on %s: %d %v, want 200", in, status, err)
		}
	}
}

// refusedOnBoth fails the test unless both instances refuse a copy of the
// session cookie token.
func refusedOnBoth(t *testing.T, c *cluster, token string) {
	t.Helper()
	for _, in := range c.names {
		if status, _, err := c.withCookie(t, in, token).api("/copy"); err != nil || status != http.StatusUnauthorized {
			t.Errorf("a copy of the signed-out session's cookie on %s: %d %v, want 401", in, status, err)
		}
	}
}
