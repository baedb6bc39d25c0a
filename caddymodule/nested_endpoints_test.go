package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// nestedEndpoints is a site whose sso (alpha, OIDC, and test, SAML) has a
// stricter sso inside it with endpoints of its own, under /admin/.sso/:
// every request to those endpoints passes the outer sso first, which takes
// the session cookie, so the inner one must act on the session the outer
// admitted. The browser is signed in through alpha; old is its session
// cookie's value.
type nestedEndpoints struct {
	w   *samlWorld
	b   *browser
	old string
}

func newNestedEndpoints(t *testing.T) *nestedEndpoints {
	t.Helper()
	w := newSAMLWorld(t, "\t\t\tjit\n")
	alpha := startOP(t, "ada@alpha.example", w.gw.base+"/.sso/oidc/alpha/callback", w.gw.base+"/admin/.sso/oidc/alpha/callback")
	w.sites = fmt.Sprintf(`%[1]s {
	sso alpha test {
		default_idp alpha
	}
	handle /admin/* {
		sso alpha test {
			default_idp alpha
			path_prefix /admin/.sso/
		}
		reverse_proxy %[2]s
	}
	handle {
		reverse_proxy %[2]s
	}
}
`, w.gw.base, w.upstream.hostPort())
	w.idpBlock = "\t\t\tjit\n\t\t}\n" + strings.TrimSuffix(oidcIdPBlock("alpha", alpha), "\t\t}\n")
	w.gw.start(w.caddyfile())
	b := newBrowser(t)
	if saw := upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw")); saw.header("X-Forwarded-Idp") != "alpha" {
		t.Fatalf("signed in through %q, want alpha", saw.header("X-Forwarded-Idp"))
	}
	old := b.cookieValue(w.gw.base+"/", ssogateway.SessionCookiePlain)
	if old == "" {
		t.Fatal("no session after alpha sign-in")
	}
	// The inner route's SAML endpoints are its own SP: the IdP learns its
	// ACS from its metadata, which the signed-in browser can fetch.
	resp := b.get(w.gw.base + "/admin/.sso/saml/test/metadata")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("inner SP metadata: %s %.300s", resp.Status, body)
	} else if err := w.idp.RegisterServiceProvider([]byte(body)); err != nil {
		t.Fatal(err)
	}
	w.addUser(samltest.Okta("sada", "sada-pw", samlPerson))
	return &nestedEndpoints{w: w, b: b, old: old}
}

// whoami is the status of the outer sso's whoami for the session cookie
// token: 200 while its session lives, 401 once it has ended.
func (n *nestedEndpoints) whoami(t *testing.T, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.w.gw.base+"/.sso/whoami", nil)
	req.Header.Set("Cookie", ssogateway.SessionCookiePlain+"="+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	return resp.StatusCode
}

// TestNestedLogoutEndsTheSession: the sign-out button of the inner route
// (POST <inner prefix>logout) ends the session in the store, not only the
// browser's cookie: a copy of the cookie stops working. It goes on to the
// IdP's logout with the ID token as the hint, read from the ended session.
func TestNestedLogoutEndsTheSession(t *testing.T) {
	n := newNestedEndpoints(t)
	if got := n.whoami(t, n.old); got != http.StatusOK {
		t.Fatalf("the session before the sign-out: %d, want 200", got)
	}
	req, _ := http.NewRequest(http.MethodPost, n.w.gw.base+"/admin/.sso/logout", strings.NewReader("return_to=/admin/"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", n.w.gw.base)
	resp, err := n.b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The IdP's logout: a form the page posts to its end_session.
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "/end_session") || !strings.Contains(body, `name="id_token_hint" value="ey`) {
		t.Errorf("the inner sign-out answered %s, want the IdP's logout with id_token_hint: %.600s", resp.Status, body)
	}
	if got := n.whoami(t, n.old); got != http.StatusUnauthorized {
		t.Errorf("a copy of the cookie after the inner sign-out: %d, want 401 (the session ended in the store)", got)
	}
}

// TestNestedWhoami: the inner route's whoami answers with the session the
// outer sso admitted, when its IdP is one of the inner route's.
func TestNestedWhoami(t *testing.T) {
	n := newNestedEndpoints(t)
	resp := n.b.get(n.w.gw.base+"/admin/.sso/whoami", "Accept", "application/json")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"idp":"alpha"`) || !strings.Contains(body, "ada@alpha.example") {
		t.Errorf("the inner whoami of a signed-in browser: %s %.300s, want 200 with alpha's session", resp.Status, body)
	}
}

// TestNestedSAMLLoginCarriesThePreviousSession: a sign-in started at the
// inner route's login?idp= (the chooser page's links) carries the session
// the browser came with ahead to the ACS, in a flow cookie beside the SAML
// request's, as a navigation's sign-in does (StartSignIn), so that the
// sign-in ends it: without it the outer sso had taken the cookie and the
// inner one carried nothing.
func TestNestedSAMLLoginCarriesThePreviousSession(t *testing.T) {
	n := newNestedEndpoints(t)
	resp, body := n.b.noFollow(n.w.gw.base+"/admin/.sso/login?idp=test&return_to=/admin/x", false)
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(resp.Header.Get("Location"), n.w.idp.URL) {
		t.Fatalf("inner login?idp=test: %s (Location %q), want the redirect to the IdP: %.300s", resp.Status, resp.Header.Get("Location"), body)
	}
	flows := 0
	for _, c := range resp.Cookies() {
		if idp.IsFlowCookie(c.Name) && c.MaxAge >= 0 {
			flows++
		}
	}
	if flows != 2 {
		t.Errorf("inner login?idp=test set %d flow cookies, want 2: the SAML request's and the previous session's", flows)
	}
}
