package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// TestSAMLSignInEndsThePreviousSessionNested: a SAML sign-in ends the
// session the browser came with (docs/security.md, "One host, several
// IdPs"), whose cookie the ACS POST does not carry (SameSite=Lax): the
// sign-in's start sends its hash ahead in a flow cookie. Under a stricter
// sso inside a protected site the outer sso has already taken the cookie,
// so the inner one carried nothing, and the old session lived on until it
// timed out; now the inner one carries the session the outer admitted.
// Separate routes (nested=false) are the control.
func TestSAMLSignInEndsThePreviousSessionNested(t *testing.T) {
	for _, nested := range []bool{false, true} {
		t.Run(fmt.Sprintf("nested=%v", nested), func(t *testing.T) {
			w := newSAMLWorld(t, "\t\t\tjit\n")
			alpha := startOP(t, "ada@alpha.example", w.gw.base+"/.sso/oidc/alpha/callback")
			up := w.upstream.hostPort()
			if nested {
				w.sites = fmt.Sprintf(`%[1]s {
	sso alpha test {
		default_idp alpha
	}
	handle /admin/* {
		sso test
		reverse_proxy %[2]s
	}
	handle {
		reverse_proxy %[2]s
	}
}
`, w.gw.base, up)
			} else {
				w.sites = fmt.Sprintf(`%[1]s {
	handle /admin/* {
		sso test {
			path_prefix /admin/.sso/
		}
		reverse_proxy %[2]s
	}
	handle {
		sso alpha
		reverse_proxy %[2]s
	}
}
`, w.gw.base, up)
			}
			w.idpBlock = "\t\t\tjit\n\t\t}\n" + strings.TrimSuffix(oidcIdPBlock("alpha", alpha), "\t\t}\n")
			prefix := "/.sso/"
			if !nested {
				prefix = "/admin/.sso/"
			}
			w.gw.start(w.caddyfile())
			mresp, err := http.Get(w.gw.base + prefix + "saml/test/metadata")
			if err != nil {
				t.Fatal(err)
			}
			if err := w.idp.RegisterServiceProvider([]byte(readBody(t, mresp))); err != nil {
				t.Fatal(err)
			}
			w.addUser(samltest.Okta("sada", "sada-pw", samlPerson))
			b := newBrowser(t)
			upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
			old := b.cookieValue(w.gw.base+"/", ssogateway.SessionCookiePlain)
			if old == "" {
				t.Fatal("no session after alpha sign-in")
			}
			action, fields := b.samlResponseForm(w.gw.base+"/admin/x", "sada", "sada-pw")
			// The ACS POST as a browser sends it cross-site: every cookie
			// but the SameSite=Lax session cookie.
			req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			var cs []string
			site, err := url.Parse(w.gw.base + "/")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range b.jar.Cookies(site) {
				if c.Name != ssogateway.SessionCookiePlain {
					cs = append(cs, c.Name+"="+c.Value)
				}
			}
			req.Header.Set("Cookie", strings.Join(cs, "; "))
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("the ACS answered %s, want the redirect of a sign-in: %.300s", resp.Status, body)
			}
			// the old alpha token, after the sign-in that replaced it
			r2, _ := http.NewRequest(http.MethodGet, w.gw.base+"/.sso/whoami", nil)
			r2.Header.Set("Cookie", ssogateway.SessionCookiePlain+"="+old)
			resp2, err := http.DefaultClient.Do(r2)
			if err != nil {
				t.Fatal(err)
			}
			if b2 := readBody(t, resp2); resp2.StatusCode != http.StatusUnauthorized {
				t.Errorf("the session the browser came with, after the sign-in that replaced its cookie: %s %.100s, want 401", resp2.Status, b2)
			}
		})
	}
}
