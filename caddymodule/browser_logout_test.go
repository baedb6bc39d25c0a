package caddymodule_test

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/browsertest"
	"github.com/caddy-sso/caddy-sso/internal/htmlform"
)

// The sign-out tests run the site on http://localhost and the IdPs on
// 127.0.0.1: two sites, as a real deployment has, so that every cookie and
// header rule a browser applies across sites is in play.

// localhostOIDCWorld is an OIDC world whose site is http://localhost:port.
// The site has an access log (log), which records every answer's headers:
// the sign-out tests check that no token lands there.
func localhostOIDCWorld(t *testing.T) *oidcWorld {
	t.Helper()
	w := newLocalhostOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tlog\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	return w.start()
}

// idpLogoutForm checks the answer to a sign-out POST on an OIDC site whose
// session has an ID token: a page (not a redirect) whose form POSTs
// id_token_hint to the IdP's end_session_endpoint, and no header that holds
// the token (Caddy's access log records them all). It returns the form.
func idpLogoutForm(t *testing.T, resp *http.Response, body, endSession string) url.Values {
	t.Helper()
	action, fields, ok := htmlform.First(resp.Request.URL, body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !ok ||
		!strings.Contains(body, `method="post"`) || action != endSession || fields.Get("id_token_hint") == "" {
		t.Fatalf("sign-out: %s to %q, want 200 with a form posting id_token_hint to %s:\n%.600s",
			resp.Status, resp.Header.Get("Location"), endSession, body)
	}
	hint := fields.Get("id_token_hint")
	for name, vs := range resp.Header {
		for _, v := range vs {
			if len(findTokens(v, []string{hint})) > 0 {
				t.Errorf("the ID token is in the sign-out answer's %s header", name)
			}
		}
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("sign-out page: Cache-Control %q, Referrer-Policy %q; want no-store, no-referrer",
			resp.Header.Get("Cache-Control"), resp.Header.Get("Referrer-Policy"))
	}
	return fields
}

// localhostSAMLWorld is a SAML world whose site is http://localhost:port,
// its idp block (preset okta, jit) with idpLines added. idp, when given,
// sets the IdP up before the gateway starts and reads its metadata.
func localhostSAMLWorld(t *testing.T, idpLines string, idp func(*samltest.Server)) *samlWorld {
	t.Helper()
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n"+idpLines)
	if idp != nil {
		idp(w.idp)
	}
	w.gw.base = fmt.Sprintf("http://localhost:%d", w.gw.port)
	w.sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	return w
}

// browserSignIn opens rawURL, signs in at the IdP's form and waits for the
// upstream's page at rawURL.
func browserSignIn(t *testing.T, ctx context.Context, rawURL, user, password string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(rawURL),
		browsertest.SignInAtTestIdP(user, password),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitForPage(t, ctx, rawURL)
}

// clickSignOut opens the sign-out page and clicks its button, as a person
// does.
func clickSignOut(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/.sso/logout"),
		chromedp.WaitVisible(chromedp.ID("submit")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if title, _ := chromedp.Run(ctx, chromedp.Title()); title != "Sign out" {
		t.Fatalf("sign-out page title %q", title)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("submit"))); err != nil {
		t.Fatal(err)
	}
}

// browserState is where the browser is and what it shows.
type browserState struct{ loc, body string }

func (s browserState) idpAsksForPassword(idpPrefix string) bool {
	return strings.HasPrefix(s.loc, idpPrefix) && strings.Contains(s.body, "Password")
}

// waitFor polls the browser until done says the state is final, and fails
// the test when it never is; refused pages end the wait at once.
func waitFor(t *testing.T, ctx context.Context, what string, done func(browserState) bool) browserState {
	t.Helper()
	var s browserState
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p, err := browsertest.Look(ctx); err == nil {
			s = browserState{loc: p.Location, body: p.Body}
			if done(s) {
				return s
			}
			if strings.Contains(s.body, "Sign-out refused") || strings.Contains(s.body, "Sign-out failed") {
				t.Fatalf("waiting for %s, the browser shows at %s:\n%s", what, s.loc, s.body)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: the browser is at %s showing:\n%s", what, s.loc, s.body)
	return s
}

// nextVisitAsksForPassword opens a page of the site and requires the IdP's
// login form: with an IdP session left, the browser would be signed
// straight back in and land on the page.
func nextVisitAsksForPassword(t *testing.T, ctx context.Context, base, idpPrefix string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/next-visit")); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, ctx, "the IdP's login form on the next visit", func(s browserState) bool {
		return s.idpAsksForPassword(idpPrefix) || strings.HasPrefix(s.loc, base+"/next-visit")
	})
	if !s.idpAsksForPassword(idpPrefix) {
		t.Fatalf("the next visit was signed in without a password (the IdP session survived the sign-out): at %s:\n%s", s.loc, s.body)
	}
}

// TestBrowserOIDCSignOut clicks Sign out in Chromium: the POST carries the
// site's Origin (the page's referrer policy); the answer is a page whose
// script POSTs id_token_hint to the IdP's end_session_endpoint (under the
// page's CSP nonce); the IdP ends its session and returns the browser to
// the site, whose sign-in then asks for the password again. The ID token
// went in a form body, so the site's access log, which records every
// answer's headers (a redirect's Location), holds none of it.
func TestBrowserOIDCSignOut(t *testing.T) {
	w := localhostOIDCWorld(t)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")

	clickSignOut(t, ctx, w.gw.base)
	idpLogin := w.idp.Issuer + oidctest.PathAuthorize
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(idpLogin) })
	reqs := w.idp.EndSessionRequests()
	if len(reqs) != 1 {
		t.Fatalf("the IdP's end_session endpoint was reached %d times, want 1", len(reqs))
	}
	hint := reqs[0].Params.Get("id_token_hint")
	if reqs[0].Method != http.MethodPost || hint == "" || reqs[0].Params.Get("post_logout_redirect_uri") != w.gw.base+"/" {
		t.Errorf("end_session got %s %v, want a POST with id_token_hint", reqs[0].Method, reqs[0].Params)
	}
	nextVisitAsksForPassword(t, ctx, w.gw.base, idpLogin)

	log := w.gw.logs()
	if !strings.Contains(log, `"uri":"/.sso/logout"`) {
		t.Fatalf("the access log has no entry for the sign-out:\n%.2000s", log)
	}
	for _, line := range findTokens(log, []string{hint}) {
		t.Errorf("the ID token is in the log: %.600s", line)
	}
}

// TestBrowserSAMLSignOut clicks Sign out in Chromium on a SAML site: a
// signed LogoutRequest goes to the IdP's Single Logout service, the IdP
// ends its session and answers with a LogoutResponse to the site's SLO
// endpoint, and the site's sign-in then asks for the password again.
func TestBrowserSAMLSignOut(t *testing.T) {
	w := localhostSAMLWorld(t, "", nil)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")
	if n := w.idp.SessionCount(); n != 1 {
		t.Fatalf("IdP sessions after sign-in: %d", n)
	}

	clickSignOut(t, ctx, w.gw.base)
	waitFor(t, ctx, "the IdP's login form after signing out", func(s browserState) bool { return s.idpAsksForPassword(w.idp.SSOURL()) })
	if n := w.idp.SessionCount(); n != 0 {
		t.Errorf("IdP sessions after sign-out: %d, want 0", n)
	}
	if n := w.idp.Requests(samltest.PathSLO); n != 1 {
		t.Errorf("the IdP's SLO endpoint was reached %d times, want 1", n)
	}
	nextVisitAsksForPassword(t, ctx, w.gw.base, w.idp.SSOURL())
}

// TestBrowserCrossSiteSignOutRefused: a page on another site that submits
// a sign-out form to the gateway gets "Sign-out refused", and the user stays
// signed in. Without the check the POST would arrive without the (Lax)
// session cookie but its answer would still delete it.
func TestBrowserCrossSiteSignOutRefused(t *testing.T) {
	w := localhostOIDCWorld(t)
	ctx := newChromium(t)
	browserSignIn(t, ctx, w.gw.base+"/dashboard", "ada", "ada-pw")

	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(rw, `<!doctype html><form id="f" method="post" action="%s/.sso/logout"><input type="hidden" name="return_to" value="/"></form>
<script>document.getElementById('f').submit()</script>`, w.gw.base)
	}))
	t.Cleanup(evil.Close)
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the refusal", func(s browserState) bool {
		if strings.Contains(s.body, "Sign-out refused") {
			if !strings.Contains(s.body, "cross_site_logout") {
				t.Errorf("the refusal names no reference code:\n%s", s.body)
			}
			return true
		}
		return false
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(w.gw.base+"/still-signed-in")); err != nil {
		t.Fatal(err)
	}
	body, _ := waitForPage(t, ctx, w.gw.base+"/still-signed-in")
	if !strings.Contains(body, `"X-Forwarded-Email":["ada@example.com"]`) {
		t.Errorf("signed out by another site's form:\n%s", body)
	}
	if n := w.idp.Requests(oidctest.PathEndSession); n != 0 {
		t.Errorf("the IdP's end_session endpoint was reached %d times", n)
	}
}

// sentCounter is a request body that counts what the client managed to
// send (what the server read, give or take the sockets' buffers).
type sentCounter struct {
	r    io.Reader
	sent atomic.Int64
}

func (b *sentCounter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.sent.Add(int64(n))
	return n, err
}

// zeroBytes reads zeros without end.
type zeroBytes struct{}

func (zeroBytes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestCrossSiteSignOutBodyNotRead: anyone can POST to /.sso/logout, and
// the sign-out reads one form field, return_to. Like every endpoint anyone
// can post to (the SAML ACS and SLO at max_response_size, back-channel
// logout at 64 KiB), it costs bounded work (docs/security.md,
// "Unauthenticated traffic"): a cross-site multipart POST of 64 MiB,
// through a real Caddy, is refused having read little of it, and nothing
// of it reaches the disk (Go's multipart parsing spools file parts to
// temporary files).
func TestCrossSiteSignOutBodyNotRead(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where mime/multipart spills file parts (os.TempDir)
	w := newOIDCWorld(t, "\t\t\tjit\n").start()

	const total = 64 << 20
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, _ := mw.CreateFormFile("upload", "x.bin")
		_, err := io.Copy(part, io.LimitReader(zeroBytes{}, total))
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	body := &sentCounter{r: pr}

	// Watch the temporary directory while the request runs.
	var maxSpill atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			entries, _ := os.ReadDir(tmp)
			var n int64
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "multipart-") {
					if fi, err := os.Stat(filepath.Join(tmp, e.Name())); err == nil {
						n += fi.Size()
					}
				}
			}
			if n > maxSpill.Load() {
				maxSpill.Store(n)
			}
		}
	})

	req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/.sso/logout", body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	status := "error: " + fmt.Sprint(err)
	if err == nil {
		status = resp.Status
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site sign-out: %s, want 403", resp.Status)
		}
	}
	close(stop)
	wg.Wait()
	pr.CloseWithError(io.ErrClosedPipe)
	t.Logf("cross-site sign-out: %s after %v; the server read %d MiB of %d MiB, and spilled up to %d MiB to %s",
		status, time.Since(start).Round(time.Millisecond), body.sent.Load()>>20, total>>20, maxSpill.Load()>>20, tmp)
	if sent := body.sent.Load(); sent > 8<<20 {
		t.Errorf("a refused cross-site sign-out read %d MiB of its body; want the body capped (as the ACS, SLO and back-channel logout cap theirs)", sent>>20)
	}
	if s := maxSpill.Load(); s > 0 {
		t.Errorf("a refused cross-site sign-out wrote %d MiB of its body to temporary files", s>>20)
	}
}

// TestSignOutPageAndOrigins checks the sign-out page's policy headers and
// which POSTs the endpoint takes: a sign-out needs the site's own origin
// (or no browser headers at all, as curl sends); "Origin: null" (what a
// no-referrer page or a sandboxed frame sends), another site, and a sibling
// subdomain (Sec-Fetch-Site: same-site) are refused with cross_site_logout.
func TestSignOutPageAndOrigins(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	idpOrigin := w.idp.Issuer // http://127.0.0.1:port

	// Opened before signing in, the page may be submitted after, in
	// another tab (TestBrowserStaleSignOutPage): its form may lead to the
	// route's IdP either way, and only there.
	anon := newBrowser(t).get(w.gw.base + "/.sso/logout")
	readBody(t, anon)
	if csp := anon.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "form-action 'self' "+idpOrigin) {
		t.Errorf("signed-out sign-out page CSP %q: want form-action 'self' %s", csp, idpOrigin)
	}

	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	pg := b.get(w.gw.base + "/.sso/logout")
	body := readBody(t, pg)
	if got := pg.Header.Get("Referrer-Policy"); got != "same-origin" {
		t.Errorf("Referrer-Policy %q, want same-origin", got)
	}
	if strings.Contains(body, "no-referrer") {
		t.Error("the page still asks for no-referrer, under which Chromium posts Origin: null")
	}
	if csp := pg.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "form-action 'self' "+idpOrigin) {
		t.Errorf("sign-out page CSP %q: want form-action 'self' %s (the IdP's end_session origin)", csp, idpOrigin)
	}

	post := func(header ...string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, w.gw.base+"/.sso/logout", strings.NewReader("return_to=/bye"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := b.noRedirects().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"Origin: null", []string{"Origin", "null", "Sec-Fetch-Site", "same-origin"}},
		{"another site", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		{"sibling subdomain", []string{"Origin", w.gw.base, "Sec-Fetch-Site", "same-site"}},
		{"cross-site, fetch metadata only", []string{"Sec-Fetch-Site", "cross-site"}},
		{"another port", []string{"Origin", fmt.Sprintf("http://127.0.0.1:%d", w.gw.port+1)}},
	} {
		resp := post(tc.header...)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cross_site_logout") {
			t.Errorf("%s: %s, want 403 cross_site_logout", tc.name, resp.Status)
		}
	}
	upstreamSaw(t, b.get(w.gw.base+"/still-signed-in"))

	resp := post("Origin", w.gw.base, "Sec-Fetch-Site", "same-origin")
	idpLogoutForm(t, resp, readBody(t, resp), idpOrigin+oidctest.PathEndSession)
}
