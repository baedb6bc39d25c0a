package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/htmlform"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestTwoInstances runs two Caddy processes of one Caddyfile on one
// PostgreSQL database behind a round-robin balancer (docs/cluster.md, "Load
// balancer: no sticky sessions"), and shows what a user and an operator
// can rely on: any instance finishes a login another began, honours
// another's sessions, learns within a second of a deactivation another
// received, refuses a SAML response another accepted; a sign-out
// double-clicked in Chromium, its two POSTs on the two instances, still
// ends the IdP's session (OIDC and SAML); concurrent first sign-ins create
// one user; and when an instance dies, every session it handed out lives
// on.
//
// The subtests share the processes and run in order; the last one kills
// instance a.
func TestTwoInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := startCluster(t, dsn, clusterOptions{})
	a, b := c.inst["a"], c.inst["b"]

	t.Run("shared keys", func(t *testing.T) {
		// The SAML SP key pair comes from the store: both instances
		// publish the same certificates, so the IdP may send a response
		// to either.
		certs := map[string][]string{}
		var metadata string
		for _, in := range []*instance{a, b} {
			br := c.newBrowser(t).via(in.name)
			body := caddytest.ReadBody(t, br.Get(c.base+"/.sso/saml/saml/metadata"))
			certs[in.name] = x509Certificates.FindAllString(body, -1)
			metadata = body
		}
		if len(certs["a"]) == 0 || !slices.Equal(certs["a"], certs["b"]) {
			t.Fatalf("SP certificates differ between the instances:\na: %.80q\nb: %.80q", certs["a"], certs["b"])
		}
		c.registerSP(metadata)

		// The identity-JWT keys too: one JWKS for the cluster.
		var jwks []string
		for _, in := range []*instance{a, b} {
			jwks = append(jwks, caddytest.ReadBody(t, c.newBrowser(t).via(in.name).Get(c.base+"/.sso/jwks.json")))
		}
		if !strings.Contains(jwks[0], `"kid"`) || jwks[0] != jwks[1] {
			t.Fatalf("the instances serve different JWKS:\na: %s\nb: %s", jwks[0], jwks[1])
		}
	})

	t.Run("OIDC login begun on a finishes on b", func(t *testing.T) {
		c.addOIDCUser("crossoidc")
		br := c.newBrowser(t).via("a")
		// Up to the IdP's login form: a sets the flow cookie (state,
		// nonce, PKCE verifier, sealed with the flow-cookie key).
		resp := br.Get(c.base + "/reports?q=1")
		form, ok := caddytest.FirstForm(resp.Request.URL, caddytest.ReadBody(t, resp))
		if !ok || !strings.HasPrefix(form.Action, c.oidc.Issuer) {
			t.Fatalf("expected the IdP's login form, got %s", resp.Request.URL)
		}
		form.Fields.Set("username", "crossoidc")
		form.Fields.Set("password", "crossoidc-pw")
		resp, err := br.via("b").TryPost(form)
		if err != nil {
			t.Fatal(err)
		}
		saw := caddytest.UpstreamSaw(t, resp)
		if saw.Path != "/reports?q=1" || saw.Header("X-Forwarded-Email") != "crossoidc@example.com" {
			t.Fatalf("upstream saw %s as %q", saw.Path, saw.Header("X-Forwarded-Email"))
		}
		if got := br.servedBy("/reports"); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("/reports answered by %v, want a (the redirect to sign in) then b", got)
		}
		if got := br.servedBy("/.sso/oidc/oidc/callback"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("callback answered by %v, want b", got)
		}
	})

	t.Run("SAML login begun on a finishes on b", func(t *testing.T) {
		c.saml.AddUser(samltest.Okta("crosssaml", "crosssaml-pw", samltest.Person{ID: "saml-crosssaml",
			FirstName: "Cross", LastName: "Saml", Email: "crosssaml@example.com"}))
		br := c.newBrowser(t).via("a")
		// a sends the AuthnRequest and keeps its ID in the flow cookie.
		resp := br.Get(c.base + "/.sso/login?idp=saml&return_to=/saml-page")
		form, ok := caddytest.FirstForm(resp.Request.URL, caddytest.ReadBody(t, resp))
		if !ok {
			t.Fatalf("no IdP login form at %s", resp.Request.URL)
		}
		form.Fields.Set("username", "crosssaml")
		form.Fields.Set("password", "crosssaml-pw")
		br.via("b")
		resp, err := br.TryPost(form)
		if err != nil {
			t.Fatal(err)
		}
		// samltest answers with the self-submitting form to the ACS.
		acs, ok := caddytest.FirstForm(resp.Request.URL, caddytest.ReadBody(t, resp))
		if !ok || !acs.Fields.Has("SAMLResponse") {
			t.Fatalf("no SAML response form at %s", resp.Request.URL)
		}
		if resp, err = br.TryPost(acs); err != nil {
			t.Fatal(err)
		}
		saw := caddytest.UpstreamSaw(t, resp)
		if saw.Path != "/saml-page" || saw.Header("X-Forwarded-Email") != "crosssaml@example.com" {
			t.Fatalf("upstream saw %s as %q", saw.Path, saw.Header("X-Forwarded-Email"))
		}
		if got := br.servedBy("/.sso/saml/saml/acs"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("ACS answered by %v, want b", got)
		}
	})

	t.Run("session made on a is honoured on b", func(t *testing.T) {
		c.addOIDCUser("roamer")
		br := c.newBrowser(t).via("a")
		id := br.signInOIDC(t, "/", "roamer").Header("X-Forwarded-User")
		status, saw, err := br.via("b").api("/on-b")
		if err != nil || status != http.StatusOK {
			t.Fatalf("b refused a's session: %d %v", status, err)
		}
		if saw.Header("X-Forwarded-User") != id || saw.Header("X-Forwarded-Email") != "roamer@example.com" {
			t.Fatalf("b forwarded %q / %q, want user %s", saw.Header("X-Forwarded-User"), saw.Header("X-Forwarded-Email"), id)
		}
		if got := br.servedBy("/on-b"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("answered by %v, want b", got)
		}
	})

	t.Run("logout on b of a session made on a", func(t *testing.T) {
		// b opens the session's sealed ID token (the session-token key
		// is shared) to send it to the IdP as id_token_hint, and a learns
		// at once that the session ended.
		c.addOIDCUser("leaver")
		br := c.newBrowser(t).via("a")
		br.signInOIDC(t, "/", "leaver")
		token := br.sessionCookie()
		if status, _, _ := br.api("/"); status != http.StatusOK {
			t.Fatalf("before logout: %d", status)
		}
		logout := func(name string, br *browser) {
			resp, err := br.NoRedirects().PostForm(c.base+"/.sso/logout", url.Values{})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// The hint goes to the IdP in a form the page posts (no
			// token in a URL, where access logs would keep it).
			action, fields, ok := htmlform.First(resp.Request.URL, string(body))
			if resp.StatusCode != http.StatusOK || !ok || !strings.HasPrefix(action, c.oidc.Issuer) || fields.Get("id_token_hint") == "" {
				t.Fatalf("%s: %s, form to %q; want a form posting id_token_hint to the IdP's end-session endpoint", name, resp.Status, action)
			}
		}
		logout("logout on b", br.via("b"))
		if ended := pollUntilRefused(t, c.withCookie(t, "a", token), time.Now()); ended > time.Second {
			t.Fatalf("a honoured the session b ended for %v, want under 1s", ended)
		}
		// A double click: the balancer picks per request, so its second
		// POST, whose answer the browser shows, may reach a. It finds
		// the session ended and goes on to the IdP's logout too; else the
		// page would say "Signed out" while the IdP's session lives on,
		// and the next visit would sign in without a password.
		logout("second click's logout on a", c.withCookie(t, "a", token))
	})

	t.Run("SCIM deactivation on b ends the session on a within 1s", func(t *testing.T) {
		c.addOIDCUser("deactivated")
		br := c.newBrowser(t).via("a")
		br.signInOIDC(t, "/", "deactivated")
		id := br.whoami(t)
		// a has the session in its cache: without a word from b it would
		// serve it for the cache TTL (30 s).
		if status, _, _ := br.api("/"); status != http.StatusOK {
			t.Fatalf("a before deactivation: %d", status)
		}
		// And a WebSocket open on a, which only a's word from b ends.
		ws := br.OpenStream(c.base, a.addr, caddytest.WebSocketPath)
		ws.Live(t, "WebSocket on a")
		req, _ := http.NewRequest(http.MethodPatch, b.URL("/scim/v2/Users/"+id), strings.NewReader(
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`))
		req.Header.Set("Authorization", "Bearer "+scimToken)
		req.Header.Set("Content-Type", "application/scim+json")
		sent := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered := time.Since(sent)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") != "b" {
			t.Fatalf("SCIM PATCH on b: %s (by %q): %s", resp.Status, resp.Header.Get("X-Served-By"), body)
		}
		ended := pollUntilRefused(t, br, sent)
		t.Logf("SCIM active=false sent to b: b answered after %v; a refused the session %v after the request was sent",
			answered.Round(time.Microsecond), ended.Round(time.Microsecond))
		if ended > time.Second {
			t.Fatalf("a honoured the deactivated user's session for %v, want under 1s", ended)
		}
		// At once, on b's word: within 5 s, on a loaded machine, where
		// the periodic check would take 30 s.
		ws.EndsWithin(t, "the WebSocket on a", 5*time.Second)
	})

	t.Run("caddy sso users disable --store postgres reaches the running instances", func(t *testing.T) {
		// The command opens the database itself (no admin API) while the
		// instances run, and tells them, as an instance would.
		c.addOIDCUser("offboarded")
		br := c.newBrowser(t).via("a")
		br.signInOIDC(t, "/", "offboarded")
		id := br.whoami(t)
		bin, err := caddyBinary()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "sso", "users", "disable", id, "--store", "postgres:"+c.dsn)
		cmd.Env = append(cmd.Environ(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("caddy sso users disable: %v\n%s", err, out)
		}
		// Without a word from the command, a would serve its cached copy
		// for the cache TTL (30 s).
		ended := pollUntilRefused(t, br, time.Now())
		t.Logf("caddy sso users disable --store postgres: a refused the session %v after the command ended", ended.Round(time.Millisecond))
		if ended > time.Second {
			t.Fatalf("a honoured the disabled user's session for %v after the command, want under 1s", ended)
		}
	})

	t.Run("SAML response replayed on the other instance is refused", func(t *testing.T) {
		c.saml.AddUser(samltest.Okta("replayed", "replayed-pw", samltest.Person{ID: "saml-replayed",
			FirstName: "Re", LastName: "Played", Email: "replayed@example.com"}))
		br := c.newBrowser(t).via("a")
		form, err := br.TrySAMLResponseForm(c.base+"/.sso/login?idp=saml&return_to=/", "replayed", "replayed-pw")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(c.base)
		captured := br.Jar.Cookies(u) // the flow cookie: an attacker copies it too
		resp, err := br.TryPostNoRedirects(form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("X-Served-By") != "a" {
			t.Fatalf("first delivery on a: %s (by %q), want a 303 from a", resp.Status, resp.Header.Get("X-Served-By"))
		}
		attacker := c.newBrowser(t).via("b")
		attacker.Jar.SetCookies(u, captured)
		// A refused ACS POST is sent on to signin-failed, which shows it.
		resp, err = attacker.TryPost(form)
		if err != nil {
			t.Fatal(err)
		}
		body := caddytest.ReadBody(t, resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Served-By") != "b" || !strings.Contains(body, "<code>"+saml.CodeReplayed+"</code>") {
			t.Fatalf("replay on b: %s (by %q), want 400 %s: %.300s", resp.Status, resp.Header.Get("X-Served-By"), saml.CodeReplayed, body)
		}
		if attacker.sessionCookie() != "" {
			t.Fatal("the replay got a session cookie")
		}
	})

	t.Run("50 concurrent first logins of one user create one user", func(t *testing.T) {
		c.addOIDCUser("newcomer")
		const n = 50
		ids := make([]string, n)
		errs := make([]error, n)
		browsers := make([]*browser, n)
		var wg sync.WaitGroup
		for i := range n {
			browsers[i] = c.newBrowser(t) // through the balancer
			wg.Go(func() {
				resp, err := browsers[i].TrySignIn(c.base+"/", "newcomer", "newcomer-pw")
				if err != nil {
					errs[i] = err
					return
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				var saw caddytest.Echoed
				if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &saw) != nil || saw.Header("X-Forwarded-User") == "" {
					errs[i] = fmt.Errorf("%s: %.200s", resp.Status, raw)
					return
				}
				ids[i] = saw.Header("X-Forwarded-User")
			})
		}
		wg.Wait()
		callbacks := map[string]int{}
		for i := range n {
			if errs[i] != nil {
				t.Errorf("login %d: %v", i, errs[i])
			}
			for _, by := range browsers[i].servedBy("/.sso/oidc/oidc/callback") {
				callbacks[by]++
			}
		}
		t.Logf("callbacks answered: %v", callbacks)
		if callbacks["a"] == 0 || callbacks["b"] == 0 {
			t.Errorf("callbacks answered %v: the balancer did not spread them", callbacks)
		}
		users := usersMatching(t, c.db(), "oidc", "sub-newcomer", "newcomer@example.com")
		if len(users) != 1 {
			t.Fatalf("%d users for one person, want 1: %+v", len(users), users)
		}
		for i, id := range ids {
			if errs[i] == nil && id != users[0].ID {
				t.Errorf("login %d signed in as %q, want %s", i, id, users[0].ID)
			}
		}
	})

	t.Run("Chromium: OIDC sign-out double-clicked over a and b", func(t *testing.T) { chromiumDoubleClickOIDC(t, c) })
	t.Run("Chromium: SAML sign-out double-clicked over a and b", func(t *testing.T) { chromiumDoubleClickSAML(t, c) })

	t.Run("kill -9 of an instance during a login storm", func(t *testing.T) {
		const logins, workers, killAfter = 200, 16, 40
		for i := range logins {
			c.addOIDCUser(fmt.Sprintf("storm%03d", i))
		}
		type result struct {
			cookie string
			err    error
			after  bool // finished after the kill
		}
		results := make([]result, logins)
		next := make(chan int)
		var done atomic.Int32
		var killed atomic.Bool
		killedAt := make(chan time.Time, 1)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := range next {
					br := c.newBrowser(t)
					resp, err := br.TrySignIn(c.base+"/", fmt.Sprintf("storm%03d", i), fmt.Sprintf("storm%03d-pw", i))
					if err == nil {
						raw, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							code := ""
							if m := referenceCode.FindSubmatch(raw); m != nil {
								code = " " + string(m[1])
							}
							err = fmt.Errorf("%s%s at %s", resp.Status, code, resp.Request.URL.Path)
						}
					}
					results[i] = result{cookie: br.sessionCookie(), err: err, after: killed.Load()}
					if done.Add(1) == killAfter {
						a.proc.Kill()
						killed.Store(true)
						killedAt <- time.Now()
					}
				}
			})
		}
		start := time.Now()
		for i := range logins {
			next <- i
		}
		close(next)
		wg.Wait()
		if !a.proc.Exited() {
			t.Fatal("instance a is still running")
		}
		var withCookie, failed, afterKill int
		failures := map[string]int{}
		for _, r := range results {
			if r.cookie != "" {
				withCookie++
				if r.after {
					afterKill++
				}
			} else {
				failed++
			}
			if r.err != nil {
				failures[r.err.Error()]++
			}
		}
		t.Logf("%d logins in %v: %d returned a session cookie (%d after a was killed at login %d), %d failed; failures: %v",
			logins, time.Since(start).Round(time.Millisecond), withCookie, afterKill, killAfter, failed, failures)
		if afterKill == 0 {
			t.Fatal("no login succeeded after a was killed: b did not take over")
		}

		// Every session cookie handed out, by a or by b, works on b.
		u, _ := url.Parse(c.base)
		for i, r := range results {
			if r.cookie == "" {
				continue
			}
			br := c.newBrowser(t)
			br.Jar.SetCookies(u, []*http.Cookie{{Name: "sso_session", Value: r.cookie}})
			status, saw, err := br.api("/after-the-storm")
			if err != nil || status != http.StatusOK {
				t.Errorf("login %d: its session cookie gets %d %v on the surviving instance", i, status, err)
				continue
			}
			if want := fmt.Sprintf("storm%03d@example.com", i); saw.Header("X-Forwarded-Email") != want {
				t.Errorf("login %d: signed in as %q, want %s", i, saw.Header("X-Forwarded-Email"), want)
			}
			if by := br.servedBy("/after-the-storm"); !slices.Equal(by, []string{"b"}) {
				t.Errorf("login %d: answered by %v, want b", i, by)
			}
		}
	})
}

// pollUntilRefused sends the browser's API requests until its session is
// refused (401), and returns how long after since that was; it fails the
// test after 5 s.
func pollUntilRefused(t *testing.T, br *browser, since time.Time) time.Duration {
	t.Helper()
	for {
		status, _, err := br.api("/")
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case status == http.StatusUnauthorized:
			return time.Since(since)
		case status != http.StatusOK:
			t.Fatalf("session answered %d, want 200 until it is refused with 401", status)
		case time.Since(since) > 5*time.Second:
			t.Fatalf("session still honoured %v later", time.Since(since))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var (
	referenceCode    = regexp.MustCompile(`Reference: <code>([a-z_]+)</code>`)
	x509Certificates = regexp.MustCompile(`<ds:X509Certificate>[^<]+</ds:X509Certificate>|<X509Certificate[^>]*>[^<]+</X509Certificate>`)
)
