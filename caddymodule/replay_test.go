package caddymodule_test

import (
	"encoding/binary"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
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
	w, action, fields, captured := capturedSAMLResponse(t)

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

// boltTxID reads the transaction ID of the newest meta page of the bbolt
// file at path: it goes up by one with every write transaction committed
// (each an fdatasync of the meta page), and not on a rollback.
func boltTxID(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// page header 16 bytes; meta: magic, version, pageSize, flags (4 each),
	// root bucket (16), freelist (8), pgid (8), txid (8).
	pageSize := int(binary.LittleEndian.Uint32(b[24:28]))
	var txid uint64
	for _, off := range []int{0, pageSize} {
		txid = max(txid, binary.LittleEndian.Uint64(b[off+64:off+72]))
	}
	return txid
}

// TestSAMLReplaysCommitNothing: docs/security.md ("Unauthenticated
// traffic") says a replayed SAML response is audited within the budget of
// 10 a minute per IdP and reason, and nothing else durable is written. A
// client holding one captured response and a copy of its flow cookie posts
// it 200 times through a real Caddy: the store commits at most the
// budget's audit events (plus a little background work), not once per
// post (each commit an fdatasync, ahead of real sign-ins).
func TestSAMLReplaysCommitNothing(t *testing.T) {
	w, action, fields, captured := capturedSAMLResponse(t)

	post := func() *http.Response {
		c := attackerClient(t, w.gw.base, captured)
		req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first delivery: %s", resp.Status)
	}
	before := boltTxID(t, w.gw.StorePath())
	const n = 200
	for range n {
		post()
	}
	commits := boltTxID(t, w.gw.StorePath()) - before
	audited := 0
	for _, ev := range auditReasons(t, "login.failed") {
		if ev == saml.CodeReplayed {
			audited++
		}
	}
	t.Logf("%d replays: %d commits, %d login.failed %s events", n, commits, audited, saml.CodeReplayed)
	if commits > 20 {
		t.Errorf("%d replays of one SAML response cost %d bbolt commits (each an fdatasync); want at most the audit budget's 10 and a little background work", n, commits)
	}
}

// capturedSAMLResponse signs Ada in at the Okta test IdP up to the SAML
// response form, not posted, and returns the gateway, the form's action
// and fields, and the browser's cookies for the gateway (its flow cookie):
// what a client that captured the response holds, to post again.
func capturedSAMLResponse(t *testing.T) (w *samlWorld, action string, fields url.Values, captured []*http.Cookie) {
	t.Helper()
	w = newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	action, fields = b.samlResponseForm(w.gw.base+"/", "ada", "ada-pw")
	gwURL, _ := url.Parse(w.gw.base)
	return w, action, fields, b.jar.Cookies(gwURL)
}
