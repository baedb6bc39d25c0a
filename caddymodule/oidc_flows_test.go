package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/redirecttest"
	"github.com/caddy-sso/caddy-sso/store"
)

func auditReasons(t *testing.T, typ string) []string {
	t.Helper()
	var reasons []string
	view(t, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: typ, Limit: 1000})
		for _, e := range events {
			reasons = append(reasons, e.Reason)
		}
		return err
	})
	return reasons
}

func TestOIDCFirstLoginCreatesUser(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	saw := upstreamSaw(t, b.signIn(w.gw.base+"/reports?year=2026", "ada", "ada-pw"))

	u := checkFirstSignIn(t, saw, "sub-ada")

	// The session carries later requests without another trip to the IdP.
	before := w.idp.Requests(oidctest.PathAuthorize)
	saw = upstreamSaw(t, b.get(w.gw.base+"/again"))
	if saw.header("X-Forwarded-User") != u.ID || w.idp.Requests(oidctest.PathAuthorize) != before {
		t.Error("second request was not served from the session")
	}
}

func TestOIDCLaterLoginUpdatesProfile(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	id := userBySubject(t, "sub-ada").ID

	// The IdP admin renames her and drops the family name from the token:
	// the new first name lands, the empty value keeps the stored one.
	if err := w.idp.SetClaims("ada", map[string]any{"sub": "sub-ada", "given_name": "Augusta",
		"family_name": "", "email": "ada@example.com", "email_verified": true}); err != nil {
		t.Fatal(err)
	}
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	u := userBySubject(t, "sub-ada")
	if u.ID != id {
		t.Fatalf("a second user was created: %s != %s", u.ID, id)
	}
	if u.FirstName != "Augusta" || saw.header("X-Forwarded-First-Name") != "Augusta" {
		t.Errorf("first name not updated: stored %q, header %q", u.FirstName, saw.header("X-Forwarded-First-Name"))
	}
	if u.LastName != "Lovelace" {
		t.Errorf("an empty incoming last name blanked the stored one: %q", u.LastName)
	}
}

func TestOIDCJITOffRefusesUnknownUser(t *testing.T) {
	w := newOIDCWorld(t, "").start()
	resp := newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "has not been set up for this application") {
		t.Fatalf("got %s: %s", resp.Status, body)
	}
	if got := auditReasons(t, store.EventLoginDenied); !slices.Contains(got, "jit_disabled") {
		t.Errorf("denial not audited: %v", got)
	}
	view(t, func(tx store.Tx) error {
		if _, err := tx.UserByLink("test", "sub-ada"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user exists after a refused JIT login: %v", err)
		}
		return nil
	})
}

func TestOIDCDeactivatedUserIsRefused(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	err := runningStore(t).Update(context.Background(), func(tx store.Tx) error {
		u, err := tx.UserByLink("test", "sub-ada")
		if err != nil {
			return err
		}
		u.Active = false
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}
	resp := newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "deactivated") {
		t.Fatalf("got %s: %s", resp.Status, body)
	}
	if userBySubject(t, "sub-ada").Active {
		t.Error("JIT reactivated a deactivated user")
	}
}

func TestOIDCMissingEmailExplains(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	w.idp.AddUser("nomail", "pw", map[string]any{"sub": "sub-nomail", "given_name": "Nemo", "family_name": "Secret-Surname"})
	resp := newBrowser(t).signIn(w.gw.base+"/", "nomail", "pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got %s: %s", resp.Status, body)
	}
	for _, want := range []string{"<code>email</code>", "<code>given_name</code>", "<code>family_name</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s:\n%s", want, body)
		}
	}
	for _, secret := range []string{"Nemo", "Secret-Surname", "sub-nomail"} {
		if strings.Contains(body, secret) {
			t.Errorf("page reveals the value %q", secret)
		}
	}
}

func TestSpoofedIdentityHeadersNeverReachUpstream(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	id := userBySubject(t, "sub-ada").ID

	req, _ := http.NewRequest(http.MethodGet, w.gw.base+"/", nil)
	req.Header.Set("Accept", "text/html")
	// Set raw keys so the spellings reach the wire as written.
	for _, k := range []string{"X-Forwarded-User", "x_forwarded_user", "X-FORWARDED-USER", "x-forwarded-email", "X_Forwarded_Groups", "Remote-User"} {
		req.Header[k] = []string{"mallory"}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	saw := upstreamSaw(t, resp)
	for k, v := range saw.Headers {
		if slices.Contains(v, "mallory") {
			t.Errorf("spoofed header %s reached the upstream", k)
		}
	}
	if saw.header("X-Forwarded-User") != id {
		t.Errorf("X-Forwarded-User = %q, want %q", saw.header("X-Forwarded-User"), id)
	}

	// Without a session, nothing of the spoof reaches the upstream either:
	// the request does not reach it at all.
	resp = newBrowser(t).get(w.gw.base+"/", "X-Forwarded-User", "mallory")
	readBody(t, resp)
	if resp.Request.URL.Host == strings.TrimPrefix(w.gw.base, "http://") && resp.StatusCode == http.StatusOK {
		t.Error("an unauthenticated request reached the upstream")
	}
}

func TestNonNavigationGets401(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	// Another site's page that frames the app, or loads the login
	// endpoint as an image, dozens of times over, must not start a
	// sign-in either: each would leave a flow cookie in the browser.
	framed := []string{"Accept", "text/html", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "iframe"}
	image := []string{"Accept", "image/avif,image/webp,*/*", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "image"}
	websocket := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	tests := []struct {
		name, method, path string
		header             []string
	}{
		{"json api", "GET", "/api/data", []string{"Accept", "application/json"}},
		{"fetch", "GET", "/api/data", []string{"Accept", "*/*", "Sec-Fetch-Mode", "cors"}},
		{"xhr", "GET", "/api/data", []string{"Accept", "text/html", "X-Requested-With", "XMLHttpRequest"}},
		{"post form", "POST", "/api/data", []string{"Accept", "text/html"}},
		{"no accept", "GET", "/api/data", nil},
		{"cross-site frame", "GET", "/api/data", framed},
		{"cross-site frame of the login endpoint", "GET", "/.sso/login?return_to=/x", framed},
		{"login endpoint as an image", "GET", "/.sso/login?return_to=/" + strings.Repeat("a", 2000), image},
		// A WebSocket from a client without fetch metadata (browsers over
		// plain http, curl), whatever its Accept.
		{"websocket", "GET", "/socket", append([]string{"Accept", "*/*"}, websocket...)},
		{"websocket accepting html", "GET", "/socket", append([]string{"Accept", "text/html"}, websocket...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, w.gw.base+tt.path, nil)
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			resp, err := newBrowser(t).noRedirects().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %s, want 401: %s", resp.Status, body)
			}
			if resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("Location") != "" {
				t.Errorf("401 must carry WWW-Authenticate and no Location: %v", resp.Header)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("a 401 minted login state: %v", resp.Cookies())
			}
		})
	}
	// curl's default Accept (*/*), a browser navigation, and one that
	// follows a link from another site are redirected.
	for _, header := range [][]string{
		{"Accept", "*/*"},
		{"Accept", "text/html", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "document"},
	} {
		req, _ := http.NewRequest("GET", w.gw.base+"/", nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		r, err := newBrowser(t).noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, r)
		if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), w.idp.Issuer) {
			t.Errorf("%v: %s to %q, want a redirect to the IdP", header, r.Status, r.Header.Get("Location"))
		}
	}
}

// TestOpenRedirectPayloads signs in once, then starts a login with every
// payload of the shared list as return_to; the IdP session makes each a
// quick round trip, and the final Location must stay on this site.
func TestOpenRedirectPayloads(t *testing.T) {
	payloads := redirecttest.Payloads()
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	base, _ := url.Parse(w.gw.base)
	client := b.noRedirects()
	for _, p := range payloads {
		// Follow the login round trip by hand up to our final redirect.
		next := w.gw.base + "/.sso/login?return_to=" + url.QueryEscape(p)
		var final string
		for range 5 {
			resp, err := client.Get(next)
			if err != nil {
				t.Fatalf("payload %q: %v", p, err)
			}
			readBody(t, resp)
			loc := resp.Header.Get("Location")
			if loc == "" {
				t.Fatalf("payload %q: %s without Location", p, resp.Status)
			}
			u, err := resp.Request.URL.Parse(loc)
			if err != nil {
				t.Fatalf("payload %q: bad Location %q", p, loc)
			}
			if strings.HasPrefix(u.Path, "/.sso/") || strings.HasPrefix(u.String(), w.idp.Issuer) {
				next = u.String()
				continue
			}
			final = loc
			break
		}
		u, err := base.Parse(final)
		if err != nil || u.Host != base.Host || u.Scheme != base.Scheme || !strings.HasPrefix(final, "/") || strings.HasPrefix(final, "//") {
			t.Errorf("payload %q produced Location %q, which leaves the site", p, final)
		}
	}
}

func TestReloadKeepsSessionsAndServes(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))

	// Every answer during a reload counts: a status other than 200, or
	// a page without the identity, fails the test. A connection that
	// Caddy's listener handover resets before any answer (a connection
	// accepted by the old server as it stops) is tried once more, as a
	// browser retries an idempotent request; a second failure counts.
	strict := &http.Client{Jar: b.jar}
	var (
		stop     atomic.Bool
		served   atomic.Int64
		resets   atomic.Int64
		failures []string
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest("GET", w.gw.base+"/during-reload", nil)
				req.Header.Set("Accept", "text/html")
				resp, err := strict.Do(req)
				if err != nil {
					resets.Add(1)
					resp, err = strict.Do(req)
				}
				if err == nil && resp.StatusCode == http.StatusOK && strings.Contains(readBody(t, resp), "X-Forwarded-User") {
					served.Add(1)
					continue
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					failures = append(failures, resp.Status)
				}
				mu.Unlock()
			}
		}()
	}
	// Reload a few times with a changed Caddyfile: new header names.
	for i := range 3 {
		time.Sleep(150 * time.Millisecond)
		w.sites = strings.Replace(w.sites, "\tsso test\n", "\tsso test {\n\t\theader first_name X-Given-Name-"+string(rune('A'+i))+"\n\t}\n", 1)
		w.sites = strings.Replace(w.sites, "\tsso test {\n\t\theader first_name X-Given-Name-"+string(rune('A'+i-1))+"\n\t}\n", "\tsso test\n", 1)
		w.gw.reload(w.caddyfile())
	}
	time.Sleep(150 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during reloads (served %d): %v", len(failures), served.Load(), failures[:min(5, len(failures))])
	}
	t.Logf("served %d requests during 3 reloads; %d connections reset and retried", served.Load(), resets.Load())
	if served.Load() < 20 {
		t.Fatalf("only %d requests served during the reloads", served.Load())
	}
	saw := upstreamSaw(t, b.get(w.gw.base+"/after"))
	if saw.header("X-Given-Name-C") != "Ada" {
		t.Errorf("after reload the new config is not in effect: %v", saw.Headers)
	}
	if runningStore(t) == nil {
		t.Fatal("no store after reload")
	}
}

func TestLogoutAndWhoami(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))

	resp := b.get(w.gw.base + "/.sso/whoami")
	var who struct {
		Email, Source, IdP string
		Groups             []string
	}
	if err := json.Unmarshal([]byte(readBody(t, resp)), &who); err != nil || who.Email != "ada@example.com" || who.Source != "jit" || who.IdP != "test" {
		t.Fatalf("whoami = %+v, %v", who, err)
	}

	// A cross-site form post cannot sign the user out.
	post := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/.sso/logout", strings.NewReader("return_to=/bye"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := b.noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp = post("https://evil.example")
	readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site logout: %s", resp.Status)
	}
	upstreamSaw(t, b.get(w.gw.base+"/still-signed-in"))

	// A same-origin post ends the session and continues at the IdP's
	// end-session endpoint, which returns to the site.
	resp = post(w.gw.base)
	form := idpLogoutForm(t, resp, readBody(t, resp), w.idp.Issuer+oidctest.PathEndSession)
	if form.Get("post_logout_redirect_uri") != w.gw.base+"/bye" || form.Get("client_id") != clientID {
		t.Fatalf("logout form: %v", form)
	}
	resp = b.get(w.gw.base+"/.sso/whoami", "Accept", "application/json")
	readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("whoami after logout: %s", resp.Status)
	}
	if got := auditReasons(t, store.EventSessionLoggedOut); len(got) == 0 {
		t.Error("logout not audited")
	}
}

// TestFailedReloadKeepsStore: a new config that fails while provisioning
// (after it took its share of the store) is rejected, and the running
// config keeps its store handle and its sessions.
func TestFailedReloadKeepsStore(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))

	// A second IdP whose issuer fails only at provision (plain http on a
	// public host), after the store was acquired for the new config.
	bad := strings.Replace(w.caddyfile(), "\t\tidp test oidc {",
		"\t\tidp broken oidc {\n\t\t\tissuer http://idp.example.com\n\t\t\tclient_id x\n\t\t}\n\t\tidp test oidc {", 1)
	if status, body := w.gw.tryReload(bad); status == http.StatusOK || !strings.Contains(body, "plain http") {
		t.Fatalf("a config with a plain-http public issuer loaded: %d %s", status, body)
	}
	saw := upstreamSaw(t, b.get(w.gw.base+"/after-failed-reload"))
	if saw.header("X-Forwarded-Email") != "ada@example.com" {
		t.Fatalf("session lost after a failed reload: %v", saw.Headers)
	}
	// The store is still open for writes: a new sign-in works.
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))

	// A config refused before it acquires the store must not release the
	// running config's handle either.
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(w.caddyfile()), nil)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.Unmarshal(cfg, &doc)
	doc["apps"].(map[string]any)["sso"].(map[string]any)["store"].(map[string]any)["backend"] = "sqlite"
	raw, _ := json.Marshal(doc)
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/load", w.gw.adminPort), "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode == http.StatusOK || !strings.Contains(body, "unknown backend") {
		t.Fatalf("a config with an unknown store backend loaded: %s %s", resp.Status, body)
	}
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))

	// And a good reload after the failed ones still shares the handle.
	w.gw.reload(w.caddyfile())
	upstreamSaw(t, b.get(w.gw.base+"/after-good-reload"))
}

// TestPlaceholders: the rest of the route sees the identity as the
// {http.auth.user.*} placeholders.
func TestPlaceholders(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\trequest_header X-Who \"{http.auth.user.email}|{http.auth.user.first_name}|{http.auth.user.last_name}|{http.auth.user.groups}|{http.auth.user.idp}|{http.auth.user.id}\"\n\treverse_proxy %s\n}\n",
		w.gw.base, w.upstream.hostPort())
	w.start()
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	want := "ada@example.com|Ada|Lovelace|admins,eng|test|" + userBySubject(t, "sub-ada").ID
	if got := saw.header("X-Who"); got != want {
		t.Errorf("placeholders gave %q, want %q", got, want)
	}
}

// TestLoginReturnToTooLongForTheFlow: a return_to the login endpoint is
// given comes back whole while the flow cookie holds it, 2,040 '&' too (a
// byte each, not JSON's six-byte escape). One the cookie cannot hold still
// signs in, returning to its page without the query, instead of failing
// with a 502 and an ERROR line per request.
func TestLoginReturnToTooLongForTheFlow(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	for _, tc := range []struct{ asked, want string }{
		{"/x?" + strings.Repeat("&", 2040), "/x?" + strings.Repeat("&", 2040)},
		{"/x?" + strings.Repeat("&", 3500), "/x"},
	} {
		resp := newBrowser(t).signIn(w.gw.base+"/.sso/login?return_to="+url.QueryEscape(tc.asked), "ada", "ada-pw")
		at := resp.Request.URL.RequestURI()
		if saw := upstreamSaw(t, resp); at != tc.want || saw.header("X-Forwarded-Email") != "ada@example.com" {
			t.Errorf("a %d-byte return_to: signed in at %.40q (%d bytes) as %q, want %.40q (%d bytes) as ada",
				len(tc.asked), at, len(at), saw.header("X-Forwarded-Email"), tc.want, len(tc.want))
		}
	}
}

// TestFormSubmittedWithoutSession: a form a browser submits without a
// session gets the 401 as the sign_in_again page, whose link returns to
// the form's page when the Referer is this site's, else to the URL posted
// to; a script's POST keeps the JSON.
func TestFormSubmittedWithoutSession(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	post := func(header ...string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/save", strings.NewReader("note=hi"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := newBrowser(t).noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readBody(t, resp)
	}
	form := []string{"Accept", "text/html,application/xhtml+xml", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}
	for referer, back := range map[string]string{
		w.gw.base + "/form?x=1":          "%2fform%3fx%3d1",
		"https://elsewhere.example/page": "%2fsave",
	} {
		resp, body := post(append(form, "Referer", referer)...)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" ||
			!strings.Contains(body, "<h1>Sign in again</h1>") || !strings.Contains(strings.ToLower(body), `href="/.sso/login?return_to=`+back+`"`) {
			t.Errorf("form from %s: %s %v\n%s", referer, resp.Status, resp.Header, body)
		}
	}
	if resp, body := post("Accept", "*/*", "Sec-Fetch-Mode", "cors"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"login"`) {
		t.Errorf("a script's POST: %s %s", resp.Status, body)
	}
}
