package caddymodule_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/htmlform"
)

// Sign-ins in progress across a config reload that moves their callback
// (docs/troubleshooting.md, `signin_config_changed`).

// callbackAfterIdPSignIn starts a sign-in at rawURL, signs ada in at the
// OIDC IdP's form, and returns the IdP's redirect back to the gateway's
// callback without following it.
func (b *browser) callbackAfterIdPSignIn(rawURL string) string {
	b.t.Helper()
	c := b.noRedirects()
	next := rawURL
	for range 4 {
		resp := b.do(c, http.MethodGet, next, nil)
		body := readBody(b.t, resp)
		if loc := resp.Header.Get("Location"); loc != "" {
			if strings.Contains(loc, "/callback?") {
				return loc
			}
			next = loc
			continue
		}
		action, fields, ok := htmlform.First(resp.Request.URL, body)
		if !ok {
			b.t.Fatalf("%s: %s, no IdP form: %s", next, resp.Status, body)
		}
		fields.Set("username", "ada")
		fields.Set("password", "ada-pw")
		resp = b.do(c, http.MethodPost, action, fields)
		readBody(b.t, resp)
		if loc := resp.Header.Get("Location"); strings.Contains(loc, "/callback?") {
			return loc
		}
		b.t.Fatalf("the IdP answered the sign-in with %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	b.t.Fatal("no callback redirect")
	return ""
}

// do sends a navigation (a form's POST with form) with c.
func (b *browser) do(c *http.Client, method, rawURL string, form url.Values) *http.Response {
	b.t.Helper()
	var req *http.Request
	var err error
	if form != nil {
		req, err = http.NewRequest(method, rawURL, strings.NewReader(form.Encode()))
	} else {
		req, err = http.NewRequest(method, rawURL, nil)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

// flowCookiesAt counts the flow cookies the browser holds for rawURL.
func (b *browser) flowCookiesAt(rawURL string) int {
	u, _ := url.Parse(rawURL)
	n := 0
	for _, c := range b.jar.Cookies(u) {
		if strings.Contains(c.Name, "sso_flow_") {
			n++
		}
	}
	return n
}

var signInAgainLink = regexp.MustCompile(`<a href="([^"]+)">Sign in again</a>`)

// checkConfigChangedPage checks the page a callback of an IdP the route no
// longer has gets, and returns its sign-in link.
func checkConfigChangedPage(t *testing.T, status int, header http.Header, body string) string {
	t.Helper()
	if status != http.StatusNotFound || !strings.Contains(body, "Sign-in failed") || !strings.Contains(body, ssogateway.CodeSignInConfigChanged) {
		t.Fatalf("callback of an IdP a reload renamed: %d %v, want 404 with the Sign-in failed page and %s: %q",
			status, header, ssogateway.CodeSignInConfigChanged, body)
	}
	m := signInAgainLink.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no Sign in again link: %s", body)
	}
	return html.UnescapeString(m[1])
}

// TestReloadSignInIdPRenamedOIDC: a sign-in in progress when a reload
// renames its IdP comes back to a callback the route no longer has. A
// person gets the Sign-in failed page with signin_config_changed and a
// link that signs in at the route's IdP and comes back to the page the
// sign-in was for, the flow cookie cleared; a script's request still gets
// the bare 404.
func TestReloadSignInIdPRenamedOIDC(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback", w.gw.base + "/.sso/oidc/other/callback"}})
	b := newBrowser(t)
	cb := b.callbackAfterIdPSignIn(w.gw.base + "/page?x=1")
	if n := b.flowCookiesAt(w.gw.base); n != 1 {
		t.Fatalf("%d flow cookies before the callback, want 1", n)
	}
	cf := strings.Replace(w.caddyfile(), "idp test oidc", "idp other oidc", 1)
	w.gw.reload(strings.Replace(cf, "\tsso test\n", "\tsso other\n", 1))

	script := b.get(cb, "Accept", "application/json")
	if body := readBody(t, script); script.StatusCode != http.StatusNotFound || body != "" {
		t.Errorf("a script's GET of the callback: %s %q, want the bare 404", script.Status, body)
	}

	resp := b.do(b.noRedirects(), http.MethodGet, cb, nil)
	link := checkConfigChangedPage(t, resp.StatusCode, resp.Header, readBody(t, resp))
	if want := "/.sso/login?return_to=" + url.QueryEscape("/page?x=1"); link != want {
		t.Errorf("Sign in again links to %q, want %q", link, want)
	}
	if n := b.flowCookiesAt(w.gw.base); n != 0 {
		t.Errorf("%d flow cookies left after the page, want the sign-in's cleared", n)
	}
	saw := upstreamSaw(t, b.signIn(w.gw.base+link, "ada", "ada-pw"))
	if saw.Path != "/page?x=1" || saw.header("X-Forwarded-Idp") != "other" {
		t.Errorf("signing in again from the page: upstream got %q through %q", saw.Path, saw.header("X-Forwarded-Idp"))
	}
}

// TestReloadSignInIdPRenamedSAML: the SAML ACS POST of a sign-in whose IdP
// a reload renamed gets the same page, with the page asked for read from
// the flow cookie its RelayState names, and that cookie cleared.
func TestReloadSignInIdPRenamedSAML(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	action, fields := b.samlResponseForm(w.gw.base+"/page?x=1", "ada", "ada-pw")
	if !strings.HasSuffix(action, "/.sso/saml/test/acs") {
		t.Fatalf("the response form posts to %s", action)
	}
	if n := b.flowCookiesAt(w.gw.base); n != 1 {
		t.Fatalf("%d flow cookies before the ACS, want 1", n)
	}
	cf := strings.Replace(w.caddyfile(), "idp test saml", "idp other saml", 1)
	w.gw.reload(strings.Replace(cf, "\tsso test\n", "\tsso other\n", 1))

	p := b.samlPost(b.noRedirects(), action, fields)
	link := checkConfigChangedPage(t, p.Status, p.Header, p.Body)
	if want := "/.sso/login?return_to=" + url.QueryEscape("/page?x=1"); link != want {
		t.Errorf("Sign in again links to %q, want %q", link, want)
	}
	if n := b.flowCookiesAt(w.gw.base); n != 0 {
		t.Errorf("%d flow cookies left after the page, want the sign-in's cleared", n)
	}
}

// TestReloadSignInPathPrefixChangedOIDC: a sign-in in progress when a
// reload changes path_prefix comes back to its old callback, a protected
// page of the site since. The sign-in that starts there comes back to the
// route's home: the upstream never gets the old callback's URL with the
// IdP's authorization code and state. (The page the first sign-in was for
// is in its flow cookie, which the handler strips before the sign-in.)
// The link of a script's 401 does not carry them either.
func TestReloadSignInPathPrefixChangedOIDC(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	w.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{w.gw.base + "/.sso/oidc/test/callback", w.gw.base + "/auth/oidc/test/callback"}})
	b := newBrowser(t)
	cb := b.callbackAfterIdPSignIn(w.gw.base + "/page?x=1")
	w.gw.reload(strings.Replace(w.caddyfile(), "\tsso test\n", "\tsso test {\n\t\tpath_prefix /auth/\n\t}\n", 1))

	script := newBrowser(t).get(cb, "Accept", "application/json")
	if body := readBody(t, script); script.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"login":"/auth/login?return_to=%2F"`) {
		t.Errorf("a script's GET of the old callback: %s %s, want 401 with a login returning to /", script.Status, body)
	}
	saw := upstreamSaw(t, b.get(cb))
	if saw.Path != "/" {
		t.Errorf("after the old callback, the upstream got %q, want the route's home, /", saw.Path)
	}
}

// TestReloadSignInPathPrefixChangedSAML: the ACS POST of a sign-in in
// progress when path_prefix changed reaches a protected page without a
// session: its Sign in link returns to the route's home, not to the old
// ACS.
func TestReloadSignInPathPrefixChangedSAML(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))
	b := newBrowser(t)
	action, fields := b.samlResponseForm(w.gw.base+"/page?x=1", "ada", "ada-pw")
	w.gw.reload(strings.Replace(w.caddyfile(), "\tsso test\n", "\tsso test {\n\t\tpath_prefix /auth/\n\t}\n", 1))

	p := b.samlPost(b.noRedirects(), action, fields)
	m := regexp.MustCompile(`<a href="([^"]+)">Sign in</a>`).FindStringSubmatch(p.Body)
	if p.Status != http.StatusUnauthorized || m == nil {
		t.Fatalf("the old ACS POST: %d, want 401 with a Sign in link: %s", p.Status, p.Body)
	}
	if link := html.UnescapeString(m[1]); link != "/auth/login?return_to=%2F" {
		t.Errorf("Sign in links to %q, want /auth/login?return_to=%%2F", link)
	}
}
