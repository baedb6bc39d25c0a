package exampletest

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// StartIdP runs the test OpenID provider until the test ends, with the
// example's client (clientID, secret) registered for site and the user ada
// (password ada-pw), and sets what the shipped Caddyfiles read from the
// environment: OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET.
func StartIdP(t *testing.T, site, clientID, secret string) {
	t.Helper()
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	op.RegisterClient(oidctest.Client{ID: clientID, Secret: secret, RedirectURIs: []string{site + "/.sso/oidc/corp/callback"}})
	op.AddUser("ada", "ada-pw", map[string]any{"sub": "sub-ada", "given_name": "Ada", "family_name": "Lovelace",
		"email": "ada@example.com", "email_verified": true, "groups": []string{"eng"}})
	t.Setenv("OIDC_ISSUER", op.Issuer)
	t.Setenv("OIDC_CLIENT_ID", clientID)
	t.Setenv("OIDC_CLIENT_SECRET", secret)
}

// OnTestGateway are the replacements (for Shipped) that put an example's
// Caddyfile on the test gateway g's ports and store, with the app's
// address site as base_url.
func OnTestGateway(g *caddytest.Gateway, site string) []string {
	return []string{
		"\n{\n", "\n{\n" + g.GlobalOptions(),
		"\tsso {\n", "\tsso {\n\t\tstore bolt " + g.StorePath() + "\n",
		"http://:9091", fmt.Sprintf("http://:%d", g.Port),
		"base_url https://app.example.com", "base_url " + site}
}

// Port is the port of the URL rawURL.
func Port(t testing.TB, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// PostOrderForm posts a form of site's page /orders/new?draft=1 to
// /orders with c, as a browser's navigation does (the form's Origin and
// Referer, Sec-Fetch-*), and returns the answer and its body.
func PostOrderForm(t testing.TB, c *http.Client, site string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, site+"/orders", strings.NewReader("item=42&qty=3"))
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
		"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "same-origin",
		"Origin": site, "Referer": site + "/orders/new?draft=1",
	} {
		req.Header.Set(name, value)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, caddytest.ReadBody(t, resp)
}

// SignInAda signs ada in through b at site's page /reports?year=2026 and
// checks that the app got that page and ada's identity headers; it returns
// the X-Forwarded-User the app got.
func SignInAda(t testing.TB, b *caddytest.Browser, site string) string {
	t.Helper()
	saw := caddytest.UpstreamSaw(t, b.SignIn(site+"/reports?year=2026", "ada", "ada-pw"))
	if saw.Path != "/reports?year=2026" {
		t.Errorf("the app got %q, want the page first asked for", saw.Path)
	}
	user := saw.Header("X-Forwarded-User")
	if user == "" || saw.Header("X-Forwarded-Email") != "ada@example.com" || saw.Header("X-Forwarded-Groups") != "eng" ||
		saw.Header("X-Forwarded-First-Name") != "Ada" || saw.Header("X-Forwarded-Idp") != "corp" {
		t.Errorf("the app got the identity headers %v", saw.Headers)
	}
	return user
}

// CheckLargeAppCookie checks that an app cookie of 6 KB, which the
// gateway's answer echoes in Cookie, reaches the app whole, with user's
// identity.
func CheckLargeAppCookie(t testing.TB, b *caddytest.Browser, site, user string) {
	t.Helper()
	big := "blob=" + strings.Repeat("x", 6000)
	if resp := b.Get(site+"/big", "Cookie", big); resp.StatusCode != http.StatusOK {
		t.Errorf("with a large app cookie: %s, want the app's answer", resp.Status)
		caddytest.ReadBody(t, resp)
	} else if saw := caddytest.UpstreamSaw(t, resp); !strings.HasPrefix(saw.Header("Cookie"), big) || saw.Header("X-Forwarded-User") != user {
		t.Errorf("with a large app cookie the app got Cookie of %d bytes, user %q", len(saw.Header("Cookie")), saw.Header("X-Forwarded-User"))
	}
}

// SignOut posts the sign-out form through b, with the site's origin.
func SignOut(t testing.TB, b *caddytest.Browser, site string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, site+"/.sso/logout", strings.NewReader(url.Values{"return_to": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", site)
	resp, err := b.NoRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	caddytest.ReadBody(t, resp)
}
