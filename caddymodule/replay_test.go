package caddymodule_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/store"
)

// replayResults counts how concurrent deliveries of one sign-in ended.
type replayResults struct {
	code string // the reference code a refused replay shows

	mu       sync.Mutex
	signedIn int
	refused  int
	other    []string
}

// deliver sends req with c, which does not follow redirects, and counts
// how it ended. A refused POST from the IdP's site is first sent on to
// signin-failed, which the browser's next request (its cookies) answers.
func (r *replayResults) deliver(c *http.Client, req *http.Request) {
	resp, err := c.Do(req)
	if err == nil && resp.StatusCode == http.StatusSeeOther && strings.HasSuffix(resp.Header.Get("Location"), "/signin-failed") {
		resp.Body.Close()
		resp, err = c.Get(req.URL.ResolveReference(&url.URL{Path: resp.Header.Get("Location")}).String())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.other = append(r.other, err.Error())
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	if resp.StatusCode == http.StatusSeeOther && slices.ContainsFunc(resp.Cookies(), func(c *http.Cookie) bool { return c.Name == "sso_session" && c.Value != "" }) {
		r.signedIn++
		return
	}
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(body, "<code>"+r.code+"</code>") {
		r.refused++
		return
	}
	r.other = append(r.other, resp.Status+": "+body[:min(len(body), 300)])
}

// attackerClient is a fresh browser holding copies of the given cookies,
// which does not follow redirects.
func attackerClient(t *testing.T, site string, cookies []*http.Cookie) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(site)
	jar.SetCookies(u, cookies)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// sessionsOfUser counts the stored sessions of the user linked to subject.
func sessionsOfUser(t *testing.T, subject string) int {
	t.Helper()
	u := userBySubject(t, subject)
	var n int
	view(t, func(tx store.Tx) error {
		s, err := tx.UserSessions(u.ID)
		n = len(s)
		return err
	})
	return n
}

// TestSAMLConcurrentReplaysOneSession posts one captured SAML response,
// with its flow cookie, 50 times at once through a real Caddy: exactly one
// sign-in succeeds, the 49 others are refused as replays, and the store
// holds one session.
func TestSAMLConcurrentReplaysOneSession(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	action, fields := b.samlResponseForm(w.gw.base+"/", "ada", "ada-pw")
	gwURL, _ := url.Parse(w.gw.base)
	captured := b.jar.Cookies(gwURL)

	res := &replayResults{code: saml.CodeReplayed}
	var wg sync.WaitGroup
	for range 50 {
		c := attackerClient(t, w.gw.base, captured)
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			res.deliver(c, req)
		})
	}
	wg.Wait()
	if res.signedIn != 1 || res.refused != 49 || len(res.other) > 0 {
		t.Fatalf("signed in %d, refused %v, other %q; want 1 sign-in and 49 %s", res.signedIn, res.refused, res.other, saml.CodeReplayed)
	}
	if n := sessionsOfUser(t, samlPerson.ID); n != 1 {
		t.Errorf("%d sessions stored, want 1", n)
	}
}

// TestOIDCConcurrentCallbacksOneSession: an attacker with a copy of the
// flow cookie gets 50 codes for the same authorization request (same
// state, nonce and PKCE challenge) and delivers them at once. Every code
// exchange succeeds at the provider; the state, consumed in the sign-in
// transaction, lets exactly one through.
func TestOIDCConcurrentCallbacksOneSession(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	before := sessionsOfUser(t, "sub-ada")

	auth := b.authorizationURL(w)
	stolen := b.flowCookies(w)
	callbacks := make([]string, 50)
	for i := range callbacks {
		callbacks[i] = b.callbackFrom(w, auth)
	}
	res := &replayResults{code: oidc.CodeStateReplayed}
	var wg sync.WaitGroup
	for _, cb := range callbacks {
		c := attackerClient(t, w.gw.base, stolen)
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, cb, nil)
			req.Header.Set("Accept", "text/html")
			res.deliver(c, req)
		})
	}
	wg.Wait()
	if res.signedIn != 1 || res.refused != 49 || len(res.other) > 0 {
		t.Fatalf("signed in %d, refused %v, other %q; want 1 sign-in and 49 %s", res.signedIn, res.refused, res.other, oidc.CodeStateReplayed)
	}
	if n := sessionsOfUser(t, "sub-ada") - before; n != 1 {
		t.Errorf("%d new sessions stored, want 1", n)
	}
}
