package caddymodule_test

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	crewjam "github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSAMLAuthnContext: with authn_context set, the AuthnRequest asks the
// IdP for that class (RequestedAuthnContext, Comparison exact). An IdP
// that answers with another one (the test IdP signs in with a password,
// PasswordProtectedTransport) gets the "Sign-in failed" page, reference
// saml_authn_context, audited as login.failed, and no user is created;
// one that answers with the requested class signs in.
func TestSAMLAuthnContext(t *testing.T) {
	const mfa = "http://schemas.microsoft.com/claims/multipleauthn"
	w := newSAMLWorld(t, "\t\t\tpreset okta\n\t\t\tjit\n\t\t\tauthn_context "+mfa+"\n").start()
	w.addUser(samltest.Okta("ada", "ada-pw", samlPerson))

	b := newBrowser(t)
	req, err := http.NewRequest(http.MethodGet, w.gw.base+"/reports?year=2026", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	resp, err := b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), w.idp.SSOURL()) {
		t.Fatalf("got %s to %q, want a redirect to the IdP", resp.Status, resp.Header.Get("Location"))
	}
	raw, err := base64.StdEncoding.DecodeString(loc.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	reqXML, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var ar crewjam.AuthnRequest
	if err := xml.Unmarshal(reqXML, &ar); err != nil {
		t.Fatal(err)
	}
	if rac := ar.RequestedAuthnContext; rac == nil || rac.Comparison != "exact" || !slices.Equal(rac.ClassRefs(), []string{mfa}) {
		t.Fatalf("AuthnRequest RequestedAuthnContext = %+v, want exact %s", rac, mfa)
	}

	p := b.samlSignIn(w.gw.base+"/reports?year=2026", "ada", "ada-pw")
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Sign-in failed") ||
		!strings.Contains(p.Body, "Reference: <code>"+saml.CodeAuthnContext+"</code>") {
		t.Fatalf("a password sign-in: got %d at %s:\n%s", p.Status, p.URL, samlShort(p.Body))
	}
	if got := auditReasons(t, store.EventLoginFailed); !slices.Contains(got, saml.CodeAuthnContext) {
		t.Errorf("login.failed reasons %v, want %s", got, saml.CodeAuthnContext)
	}
	view(t, func(tx store.Tx) error {
		if _, err := tx.UserByLink("test", samlPerson.ID); err == nil {
			t.Error("a user was created by a refused sign-in")
		}
		return nil
	})

	w.idp.SetHooks(samltest.Hooks{Assertion: func(a *crewjam.Assertion) {
		a.AuthnStatements[0].AuthnContext.AuthnContextClassRef = &crewjam.AuthnContextClassRef{Value: mfa}
	}})
	saw := newBrowser(t).samlSignIn(w.gw.base+"/reports?year=2026", "ada", "ada-pw").saw(t)
	checkFirstSignIn(t, saw, samlPerson.ID)
}
