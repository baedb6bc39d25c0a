package saml

// Checks mod_auth_mellon makes that crewjam leaves to the SP: one assertion
// per Response, and a required authentication context
// (MellonAuthnContextClassRef).

import (
	"encoding/xml"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

var eveUser = samltest.Okta("eve", "pw", samltest.Person{ID: "00u-eve", FirstName: "Eve", LastName: "E", Email: "eve@example.com"})

// TestACSRefusesSeveralAssertions: a Response, signed by the IdP over
// everything in it, that holds an assertion for eve before one for ada,
// both answering this browser's request, is refused
// (saml_multiple_assertions) rather than signing in as eve, whichever
// mix of plaintext and encrypted assertions it holds; and since crewjam
// refuses more than one only in an unsigned Response, the count comes
// first there too. A Response with one assertion, plaintext or
// encrypted, still signs in.
func TestACSRefusesSeveralAssertions(t *testing.T) {
	h := newHarness(t)
	spCert := h.p.keys[0].Certificate
	// otherAssertion is eve's assertion for pend, signed, as a child
	// element to add to another Response.
	otherAssertion := func(t *testing.T, pend pending, encrypt bool) *etree.Element {
		spec := h.spec(pend)
		spec.User, spec.SignResponse = eveUser, false
		if encrypt {
			spec.EncryptTo = spCert
		}
		el, err := h.idp.Forge(spec)
		if err != nil {
			t.Fatal(err)
		}
		child := el.FindElement("./Assertion")
		if encrypt {
			child = el.FindElement("./EncryptedAssertion")
		}
		return child.Copy()
	}
	for _, tc := range []struct {
		name                  string
		encryptFirst, encrypt bool // eve's, ada's
		signResponse          bool
	}{
		{name: "two plaintext assertions", signResponse: true},
		{name: "encrypted assertion first", encryptFirst: true, signResponse: true},
		{name: "plaintext then encrypted", encrypt: true, signResponse: true},
		{name: "two encrypted assertions", encryptFirst: true, encrypt: true, signResponse: true},
		{name: "unsigned response, signed assertions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pend := h.begin(t)
			first := otherAssertion(t, pend, tc.encryptFirst)
			spec := h.spec(pend)
			spec.SignResponse = false
			if tc.encrypt {
				spec.EncryptTo = spCert
			}
			form := h.forge(t, spec, pend.relayState, func(resp *etree.Element) {
				second := resp.FindElement("./Assertion")
				if second == nil {
					second = resp.FindElement("./EncryptedAssertion")
				}
				resp.InsertChildAt(second.Index(), first)
				if !tc.signResponse {
					return
				}
				signed, err := h.idp.SignElement(resp)
				if err != nil {
					t.Fatal(err)
				}
				*resp = *signed
			})
			a, _, err := h.callback(t, pend, form)
			if codeOf(err) != CodeMultipleAssertions {
				subject := ""
				if a != nil {
					subject = a.Subject
				}
				t.Fatalf("got subject %q, error %v; want %s", subject, err, CodeMultipleAssertions)
			}
			var le *idp.LoginError
			if errors.As(err, &le) && !le.Bound {
				t.Error("the refusal of this browser's login is not Bound")
			}
		})
	}
	for _, encrypt := range []bool{false, true} {
		pend := h.begin(t)
		spec := h.spec(pend)
		if encrypt {
			spec.EncryptTo = spCert
		}
		a, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
		if err != nil || a.Subject != "ada" {
			t.Fatalf("one assertion (encrypted %v): %+v %v", encrypt, a, err)
		}
	}
}

// TestAssertionCount: only the root's own Assertion and EncryptedAssertion
// children count, in any namespace prefix; one nested in another's Advice
// does not.
func TestAssertionCount(t *testing.T) {
	for doc, want := range map[string]int{
		`<p:Response xmlns:p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:s="urn:oasis:names:tc:SAML:2.0:assertion"><s:Issuer/><s:Assertion><s:Advice><s:Assertion/></s:Advice></s:Assertion></p:Response>`: 1,
		`<Response><Assertion/><x:EncryptedAssertion xmlns:x="urn:x"/></Response>`: 2,
		`<Response><Extensions><Assertion/><Assertion/></Extensions></Response>`:   0,
		`<Response><Assertion/><Assertion>`:                                        2,
		// The byte scan's cases: end tags, look-alike names, attributes.
		`<Response><s:Assertion ID="a"></s:Assertion><s:AssertionIDRef/></Response>`:                    1,
		`<Response>` + "<Assertion\n/><EncryptedAssertion\tx='1'>" + `</EncryptedAssertion></Response>`: 2,
		`<Response><!-- <Assertion> --><Assertion/></Response>`:                                         1,
		`<Response><Issuer>a</Issuer></Response>`:                                                       0,
	} {
		if got := assertionCount([]byte(doc)); got != want {
			t.Errorf("assertionCount(%s) = %d, want %d", doc, got, want)
		}
	}
}

const (
	classMFA      = "http://schemas.microsoft.com/claims/multipleauthn"
	classX509     = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
	classPassword = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
)

// withClass makes an assertion's (only) AuthnStatement name class ("" for
// none).
func withClass(class string) func(*saml.Assertion) {
	return func(a *saml.Assertion) {
		a.AuthnStatements[0].AuthnContext.AuthnContextClassRef = nil
		if class != "" {
			a.AuthnStatements[0].AuthnContext.AuthnContextClassRef = &saml.AuthnContextClassRef{Value: class}
		}
	}
}

// TestAuthnContext: with Config.AuthnContext set, the AuthnRequest asks for
// those classes (Comparison exact), and an assertion is accepted only if
// it names one of them; IdP-initiated ones too. Without it, no class is
// requested and any is accepted.
func TestAuthnContext(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.AuthnContext = []string{classMFA, classX509}
		c.AllowIdPInitiated = true
	})
	pend := h.begin(t)
	u, _ := url.Parse(pend.location)
	var ar saml.AuthnRequest
	if err := xml.Unmarshal(decodeRedirect(t, u.Query().Get("SAMLRequest")), &ar); err != nil {
		t.Fatal(err)
	}
	if rac := ar.RequestedAuthnContext; rac == nil || rac.Comparison != "exact" || !slices.Equal(rac.ClassRefs(), []string{classMFA, classX509}) {
		t.Fatalf("AuthnRequest RequestedAuthnContext = %+v", rac)
	}

	for _, tc := range []struct {
		class string
		want  string // code; "" signs in
	}{
		{classPassword, CodeAuthnContext},
		{"", CodeAuthnContext},
		{classMFA, ""},
		{classX509, ""},
	} {
		for _, idpInitiated := range []bool{false, true} {
			pend, relayState := pending{}, "/x"
			if !idpInitiated {
				pend = h.begin(t)
				relayState = pend.relayState
			}
			spec := h.spec(pend)
			spec.Assertion = withClass(tc.class)
			_, _, err := h.callback(t, pend, h.forge(t, spec, relayState, nil))
			if codeOf(err) != tc.want || tc.want == "" && err != nil {
				t.Errorf("class %q (IdP-initiated %v): %v, want %q", tc.class, idpInitiated, err, tc.want)
			}
		}
	}

	// A real login at the IdP, which answers with the class its hook sets.
	h.idp.AddUser(oktaUser)
	h.idp.SetHooks(samltest.Hooks{Assertion: withClass(classPassword)})
	if res := h.login(newBrowser(t), "ada", "pw", "/app"); res.Code != CodeAuthnContext {
		t.Fatalf("password sign-in at the IdP: %+v", res)
	}
	h.idp.SetHooks(samltest.Hooks{Assertion: withClass(classMFA)})
	if res := h.login(newBrowser(t), "ada", "pw", "/app"); res.Error != "" || res.Assertion.Subject != "ada" {
		t.Fatalf("MFA sign-in at the IdP: %+v", res)
	}

	plain := newHarness(t)
	pend = plain.begin(t)
	u, _ = url.Parse(pend.location)
	var plainAR saml.AuthnRequest
	if err := xml.Unmarshal(decodeRedirect(t, u.Query().Get("SAMLRequest")), &plainAR); err != nil || plainAR.RequestedAuthnContext != nil {
		t.Fatalf("without authn_context, the AuthnRequest asks for %+v (%v)", plainAR.RequestedAuthnContext, err)
	}
	spec := plain.spec(pend)
	spec.Assertion = withClass("")
	if _, _, err := plain.callback(t, pend, plain.forge(t, spec, pend.relayState, nil)); err != nil {
		t.Fatalf("without authn_context, an assertion without a class: %v", err)
	}
}

func TestAuthnContextConfig(t *testing.T) {
	for _, bad := range [][]string{{""}, {classMFA, "urn:a b"}, {" " + classMFA}} {
		if _, err := New(Config{Name: "x", MetadataXML: []byte("<x/>"), AuthnContext: bad}); err == nil || !strings.Contains(err.Error(), "authn_context") {
			t.Errorf("AuthnContext %q: %v", bad, err)
		}
	}
}
