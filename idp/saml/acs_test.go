package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/redirecttest"
)

// Element helpers for tampering with forged responses.

func assertionEl(t testing.TB, resp *etree.Element) *etree.Element {
	t.Helper()
	el := resp.FindElement("./Assertion")
	if el == nil {
		t.Fatal("response has no Assertion")
	}
	return el
}

func signatureEl(t testing.TB, el *etree.Element) *etree.Element {
	t.Helper()
	sig := el.FindElement("./Signature")
	if sig == nil {
		t.Fatalf("%s has no Signature", el.Tag)
	}
	return sig
}

// evilCopy is an unsigned copy of a signed assertion, for another user.
func evilCopy(t testing.TB, a *etree.Element, id string) *etree.Element {
	t.Helper()
	evil := a.Copy()
	if sig := evil.FindElement("./Signature"); sig != nil {
		evil.RemoveChild(sig)
	}
	evil.CreateAttr("ID", id)
	evil.FindElement("./Subject/NameID").SetText("admin")
	return evil
}

func reencode(t testing.TB, form url.Values, edit func(string) string) {
	t.Helper()
	reencodeField(t, form, "SAMLResponse", edit)
}

// TestACSRefuses is one negative test per duty of the ACS. Each case starts
// from a response that is accepted (see "baseline") and breaks one thing,
// and expects that thing's code, so a case cannot pass because of another
// check. Cases marked "ours" exercise a check this package makes; the others
// exercise crewjam's, switched on or configured here.
func TestACSRefuses(t *testing.T) {
	type acsCase struct {
		name string
		opts []harnessOpt
		// spec edits the forged response's description.
		spec func(h *harness, s *samltest.ResponseSpec)
		// tamper edits the signed XML.
		tamper func(t testing.TB, resp *etree.Element)
		// form edits the posted form.
		form func(t testing.TB, f url.Values)
		// body edits the encoded form, for what url.Values cannot express.
		body func(string) string
		// build replaces Forge for responses it cannot express.
		build func(h *harness, t testing.TB, spec samltest.ResponseSpec, relayState string) url.Values
		// noCookie posts without the flow cookie.
		noCookie bool
		want     string
	}
	now := time.Now()
	otherKey, otherCert, err := samltest.NewKeyPair("attacker")
	if err != nil {
		t.Fatal(err)
	}
	// frozen pins the SP's clock to a whole second, for cases on a bound.
	frozen := func(c *Config) {
		at := time.Now().Truncate(time.Second)
		c.Now = func() time.Time { return at }
	}
	// conditionsEnd puts Conditions NotOnOrAfter at d from the SP's clock,
	// and the SubjectConfirmationData's well after it.
	conditionsEnd := func(d time.Duration) func(*harness, *samltest.ResponseSpec) {
		return func(h *harness, s *samltest.ResponseSpec) {
			at := h.cfg.Now()
			s.Assertion = func(a *saml.Assertion) {
				a.Conditions.NotOnOrAfter = at.Add(d)
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = at.Add(5 * time.Minute)
			}
		}
	}
	assertionOnly := func(h *harness, s *samltest.ResponseSpec) { s.SignResponse = false }
	responseOnly := func(h *harness, s *samltest.ResponseSpec) { s.SignAssertion = false }

	cases := []acsCase{
		{name: "baseline accepted", want: ""},
		{name: "baseline accepted: assertion signed only", spec: assertionOnly, want: ""},
		{name: "baseline accepted: response signed only", spec: responseOnly, want: ""},

		// Size, encoding and DTDs.
		{name: "oversize body (ours)", form: func(t testing.TB, f url.Values) {
			f.Set("SAMLResponse", f.Get("SAMLResponse")+strings.Repeat("A", DefaultMaxResponseSize))
		}, want: CodeResponseTooLarge},
		{name: "DOCTYPE (ours)", form: func(t testing.TB, f url.Values) {
			reencode(t, f, func(s string) string { return `<!DOCTYPE Response [<!ENTITY e "x">]>` + s })
		}, want: CodeDoctype},
		{name: "entity expansion (ours)", form: func(t testing.TB, f url.Values) {
			reencode(t, f, func(s string) string {
				return `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` + s
			})
		}, want: CodeDoctype},
		{name: "not base64", form: func(t testing.TB, f url.Values) { f.Set("SAMLResponse", "%%%") }, want: CodeMalformed},
		{name: "no SAMLResponse", form: func(t testing.TB, f url.Values) { f.Del("SAMLResponse") }, want: CodeResponseMissing},
		// An empty field is no response either: refused before the flow
		// cookie is taken or anything parses, with the same code.
		{name: "empty SAMLResponse (ours)", form: func(t testing.TB, f url.Values) { f.Set("SAMLResponse", "") }, want: CodeResponseMissing},
		{name: "two SAMLResponse fields", form: func(t testing.TB, f url.Values) { f.Add("SAMLResponse", f.Get("SAMLResponse")) }, want: CodeResponseMissing},
		{name: "two RelayState fields (ours)", form: func(t testing.TB, f url.Values) { f.Add("RelayState", "/elsewhere") }, want: CodeMalformed},
		// ParseForm keeps the pairs before a malformed one (and after it):
		// the valid SAMLResponse parsed, the form is still refused whole.
		{name: "malformed pair after a valid SAMLResponse (ours)", body: func(b string) string { return b + "&%zz" }, want: CodeMalformed},

		// Signatures.
		{name: "unsigned", spec: func(h *harness, s *samltest.ResponseSpec) { s.SignAssertion, s.SignResponse = false, false }, want: CodeSignature},
		{name: "signed by a key in KeyInfo the metadata does not list",
			spec: func(h *harness, s *samltest.ResponseSpec) { s.Key, s.Certificate = otherKey, otherCert }, want: CodeUntrustedKey},
		{name: "signed by another key, metadata certificate in KeyInfo",
			spec: func(h *harness, s *samltest.ResponseSpec) {
				_, cert := h.idp.Key()
				s.Key, s.Certificate = otherKey, cert
			}, want: CodeSignature},
		{name: "signed by another key, KeyInfo without certificate",
			spec: func(h *harness, s *samltest.ResponseSpec) {
				s.SignResponse = false
				s.Key, s.Certificate = otherKey, otherCert
			},
			tamper: func(t testing.TB, resp *etree.Element) {
				sig := signatureEl(t, assertionEl(t, resp))
				sig.RemoveChild(sig.FindElement("./KeyInfo"))
			}, want: CodeSignature},
		{name: "bad digest: signed content changed", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			assertionEl(t, resp).FindElement("./Subject/NameID").SetText("admin")
		}, want: CodeSignature},
		{name: "bad digest: DigestValue changed", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			dv := signatureEl(t, assertionEl(t, resp)).FindElement(".//DigestValue")
			dv.SetText(base64.StdEncoding.EncodeToString(make([]byte, 32)))
		}, want: CodeSignature},
		{name: "Reference to another element's ID", spec: responseOnly, tamper: func(t testing.TB, resp *etree.Element) {
			// The Response's signature, moved into the unsigned assertion,
			// still names the Response.
			sig := signatureEl(t, resp)
			resp.RemoveChild(sig)
			assertionEl(t, resp).AddChild(sig)
		}, want: CodeSignature},
		{name: "SHA-1 refused", spec: func(h *harness, s *samltest.ResponseSpec) { s.SHA1 = true }, want: CodeSignatureAlgorithm},
		{name: "SHA-1 accepted when allowed", opts: []harnessOpt{func(c *Config) { c.AllowSHA1 = true }},
			spec: func(h *harness, s *samltest.ResponseSpec) { s.SHA1 = true }, want: ""},

		// XML signature wrapping.
		{name: "XSW: unsigned assertion inserted before the signed one", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			a := assertionEl(t, resp)
			resp.InsertChildAt(a.Index(), evilCopy(t, a, "id-evil"))
		}, want: CodeMultipleAssertions},
		{name: "XSW: unsigned assertion inserted after the signed one", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			resp.AddChild(evilCopy(t, assertionEl(t, resp), "id-evil"))
		}, want: CodeMultipleAssertions},
		{name: "XSW: signed assertion moved inside the unsigned one", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			a := assertionEl(t, resp)
			evil := evilCopy(t, a, "id-evil")
			resp.RemoveChild(a)
			evil.AddChild(a)
			resp.AddChild(evil)
		}, want: CodeSignature},
		{name: "XSW: signed assertion moved into the evil one's Signature", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			a := assertionEl(t, resp)
			sig := signatureEl(t, a).Copy()
			evil := evilCopy(t, a, "id-evil")
			resp.RemoveChild(a)
			obj := sig.CreateElement("ds:Object")
			obj.AddChild(a)
			evil.AddChild(sig)
			resp.AddChild(evil)
		}, want: CodeSignature},
		{name: "XSW: evil assertion keeps the signed one's ID and Signature", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			a := assertionEl(t, resp)
			evil := evilCopy(t, a, a.SelectAttrValue("ID", ""))
			evil.AddChild(signatureEl(t, a).Copy())
			resp.RemoveChild(a)
			ext := resp.CreateElement("samlp:Extensions")
			ext.AddChild(a)
			resp.AddChild(evil)
		}, want: CodeSignature},
		{name: "XSW: signed assertion moved to Extensions, unsigned one inserted", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			a := assertionEl(t, resp)
			evil := evilCopy(t, a, "id-evil")
			resp.RemoveChild(a)
			resp.CreateElement("samlp:Extensions").AddChild(a)
			resp.AddChild(evil)
		}, want: CodeSignature},
		{name: "XSW: signed Response wrapped in an evil one's Signature", spec: responseOnly, tamper: func(t testing.TB, resp *etree.Element) {
			orig := resp.Copy()
			resp.CreateAttr("ID", "id-evil-response")
			assertionEl(t, resp).FindElement("./Subject/NameID").SetText("admin")
			signatureEl(t, resp).CreateElement("ds:Object").AddChild(orig)
		}, want: CodeSignature},
		{name: "XSW: signed Response placed beside the evil content", spec: responseOnly, tamper: func(t testing.TB, resp *etree.Element) {
			orig := resp.Copy()
			resp.CreateAttr("ID", "id-evil-response")
			assertionEl(t, resp).FindElement("./Subject/NameID").SetText("admin")
			resp.InsertChildAt(0, orig)
		}, want: CodeSignature},
		{name: "two assertions in an unsigned response, both signed", spec: assertionOnly, tamper: func(t testing.TB, resp *etree.Element) {
			// A second, validly signed assertion (for another user) from
			// the same IdP: only "exactly one" stops it.
			resp.AddChild(assertionEl(t, resp).Copy())
		}, want: CodeMultipleAssertions},

		// Issuer, status, addressing.
		{name: "wrong assertion Issuer", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) { a.Issuer.Value = "https://evil.example/idp" }
		}, want: CodeIssuer},
		{name: "wrong Response Issuer", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Response = func(r *saml.Response) { r.Issuer.Value = "https://evil.example/idp" }
		}, want: CodeIssuer},
		{name: "non-Success status", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Response = func(r *saml.Response) { r.Status.StatusCode.Value = saml.StatusRequester }
		}, want: CodeStatus},
		{name: "wrong Destination", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Response = func(r *saml.Response) { r.Destination = "https://other.example/.sso/saml/test/acs" }
		}, want: CodeDestination},
		{name: "wrong Recipient", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) {
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://other.example/acs"
			}
		}, want: CodeDestination},
		{name: "missing Audience", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) { a.Conditions.AudienceRestrictions = nil }
		}, want: CodeAudience},
		{name: "foreign Audience", spec: func(h *harness, s *samltest.ResponseSpec) { s.Audience = "https://other-sp.example/metadata" }, want: CodeAudience},
		{name: "unknown condition", build: (*harness).unknownConditionResponse, want: CodeUnsupported},

		// Time.
		{name: "NotBefore 10 minutes ahead", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) { a.Conditions.NotBefore = now.Add(10 * time.Minute) }
		}, want: CodeNotYetValid},
		{name: "NotBefore 2 minutes ahead, beyond ClockSkew (ours)", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) { a.Conditions.NotBefore = now.Add(2 * time.Minute) }
		}, want: CodeNotYetValid},
		{name: "NotBefore 2 minutes ahead, within a 3 minute ClockSkew", opts: []harnessOpt{func(c *Config) { c.ClockSkew = 3 * time.Minute }},
			spec: func(h *harness, s *samltest.ResponseSpec) {
				s.Assertion = func(a *saml.Assertion) { a.Conditions.NotBefore = now.Add(2 * time.Minute) }
			}, want: ""},
		{name: "Conditions NotOnOrAfter 10 minutes ago", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) { a.Conditions.NotOnOrAfter = now.Add(-10 * time.Minute) }
		}, want: CodeExpired},
		{name: "Conditions NotOnOrAfter 2 minutes ago, beyond ClockSkew (ours)", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) { a.Conditions.NotOnOrAfter = now.Add(-2 * time.Minute) }
		}, want: CodeExpired},
		// Conditions NotOnOrAfter is exclusive: at exactly NotOnOrAfter
		// plus ClockSkew the assertion has expired.
		{name: "Conditions NotOnOrAfter exactly ClockSkew ago (ours)", opts: []harnessOpt{frozen},
			spec: conditionsEnd(-idp.DefaultClockSkew), want: CodeExpired},
		{name: "Conditions NotOnOrAfter a second short of ClockSkew ago", opts: []harnessOpt{frozen},
			spec: conditionsEnd(-idp.DefaultClockSkew + time.Second), want: ""},
		{name: "SubjectConfirmationData NotOnOrAfter 2 minutes ago (ours)", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) {
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = now.Add(-2 * time.Minute)
			}
		}, want: CodeExpired},
		{name: "stale IssueInstant", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Now = now.Add(-5 * time.Minute)
			s.Assertion = func(a *saml.Assertion) {
				a.Conditions.NotOnOrAfter = now.Add(5 * time.Minute)
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = now.Add(5 * time.Minute)
			}
		}, want: CodeExpired},
		{name: "IssueInstant 2 minutes ahead (ours)", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) { a.IssueInstant = now.Add(2 * time.Minute) }
		}, want: CodeNotYetValid},

		// Binding to this browser's request.
		{name: "unknown InResponseTo", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.InResponseTo = "id-unknown"
		}, want: CodeInResponseTo},
		{name: "assertion InResponseTo differs from the Response's", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.Assertion = func(a *saml.Assertion) {
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo = "id-other"
			}
		}, want: CodeInResponseTo},
		{name: "no InResponseTo while IdP-initiated is off", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.InResponseTo = ""
		}, want: CodeInResponseTo},
		{name: "flow cookie missing", noCookie: true, want: CodeFlowMissing},
		{name: "IdP-initiated while disabled", form: func(t testing.TB, f url.Values) { f.Set("RelayState", "/reports") }, want: CodeUnsolicited},

		// Encryption.
		{name: "encrypted assertion decrypts", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.EncryptTo = testKeys()[0].Certificate
		}, want: ""},
		{name: "encrypted to the previous key during rotation", opts: []harnessOpt{func(c *Config) { c.SPKeys = []KeyPair{testKeys()[1], testKeys()[0]} }},
			spec: func(h *harness, s *samltest.ResponseSpec) { s.EncryptTo = testKeys()[0].Certificate }, want: ""},
		{name: "undecryptable encrypted assertion", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.EncryptTo = testKeys()[2].Certificate
		}, want: CodeDecryption},
		{name: "CBC-encrypted assertion in an unsigned Response", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.SignResponse = false
			s.EncryptTo = testKeys()[0].Certificate
			enc := xmlenc.OAEP()
			enc.BlockCipher = xmlenc.AES256CBC
			s.Encrypter = enc
		}, want: CodeSignature},
		{name: "CBC-encrypted assertion in a signed Response", spec: func(h *harness, s *samltest.ResponseSpec) {
			s.EncryptTo = testKeys()[0].Certificate
			enc := xmlenc.OAEP()
			enc.BlockCipher = xmlenc.AES256CBC
			s.Encrypter = enc
		}, want: ""},
	}
	shared := newHarness(t)
	shared.idp.AddUser(oktaUser)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := shared
			if len(tc.opts) > 0 {
				h = newHarness(t, tc.opts...)
			}
			pend := h.begin(t)
			spec := h.spec(pend)
			if tc.spec != nil {
				tc.spec(h, &spec)
			}
			var form url.Values
			if tc.build != nil {
				form = tc.build(h, t, spec, pend.relayState)
			} else {
				form = h.forge(t, spec, pend.relayState, func(el *etree.Element) {
					if tc.tamper != nil {
						tc.tamper(t, el)
					}
				})
			}
			if tc.form != nil {
				tc.form(t, form)
			}
			if tc.noCookie {
				pend.cookies = nil
			}
			body := form.Encode()
			if tc.body != nil {
				body = tc.body(body)
			}
			a, _, err := h.callbackBody(t, pend, body)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q, want %q (err: %v)", got, tc.want, err)
			}
			if tc.want == "" && (a == nil || a.Subject != "ada") {
				t.Fatalf("accepted assertion = %+v", a)
			}
			if tc.want != "" && a != nil {
				t.Fatalf("refused, yet an assertion was returned")
			}
			var le *idp.LoginError
			if err != nil && !errors.As(err, &le) {
				t.Fatalf("error is not an *idp.LoginError: %T", err)
			}
			if err != nil && strings.Contains(err.Error(), "<") {
				t.Errorf("error text carries XML: %v", err)
			}
		})
	}
}

// unknownConditionResponse is a correct response whose Conditions hold an
// extension condition crewjam does not understand, which makes the
// assertion Indeterminate; RejectUnknownConditions must refuse it.
func (h *harness) unknownConditionResponse(t testing.TB, spec samltest.ResponseSpec, relayState string) url.Values {
	t.Helper()
	spec.SignAssertion, spec.SignResponse = false, false
	el, err := h.idp.Forge(spec)
	if err != nil {
		t.Fatal(err)
	}
	a := assertionEl(t, el)
	cond := a.FindElement("./Conditions").CreateElement("saml:Condition")
	cond.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
	cond.CreateAttr("xmlns:ext", "urn:example:ext")
	cond.CreateAttr("xsi:type", "ext:DelegationRestrictionType")
	signed, err := h.idp.SignElement(a)
	if err != nil {
		t.Fatal(err)
	}
	el.RemoveChild(a)
	el.AddChild(signed)
	v, err := samltest.Encode(el)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"SAMLResponse": {v}, "RelayState": {relayState}}
}

// TestACSCommentInNameID shows that a comment inside the NameID (the
// CVE-2017-11427 family: comments are outside the signature's canonical
// form, so "admin@example.com<!---->.evil.test" verifies as the IdP signed
// "admin@example.com.evil.test", and a reader that takes only the first text
// node gets "admin@example.com") does not change who logs in. crewjam reads
// the assertion from the canonical bytes the signature covers, where the
// comment is gone and the text whole; etree v1.8.1's Text() also skips
// comments. The first text node, which vulnerable SPs read, is truncated.
func TestACSCommentInNameID(t *testing.T) {
	h := newHarness(t)
	u := oktaUser
	u.NameID = "admin@example.com.evil.test"
	u.Attributes = map[string][]string{"email": {"admin@example.com.evil.test"}}
	pend := h.begin(t)
	spec := h.spec(pend)
	spec.User = u
	spec.SignResponse = false
	form := h.forge(t, spec, pend.relayState, func(resp *etree.Element) {
		for _, path := range []string{"./Subject/NameID", "./AttributeStatement/Attribute/AttributeValue"} {
			el := assertionEl(t, resp).FindElement(path)
			el.SetText("admin@example.com")
			el.CreateComment("")
			el.CreateText(".evil.test")
			if first := el.Child[0].(*etree.CharData).Data; first != "admin@example.com" {
				t.Fatalf("first text node = %q; the test no longer builds the attack", first)
			}
			if txt := el.Text(); txt != "admin@example.com.evil.test" {
				t.Errorf("etree Text() = %q: it truncates at comments", txt)
			}
		}
	})
	a, _, err := h.callback(t, pend, form)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != "admin@example.com.evil.test" || a.First("email") != "admin@example.com.evil.test" {
		t.Fatalf("subject %q, email %q: truncated at the comment", a.Subject, a.First("email"))
	}
}

// TestACSBinding covers the checks that tie a response to the browser and
// the login it answers.
func TestACSBinding(t *testing.T) {
	h := newHarness(t)
	h.idp.AddUser(oktaUser)

	t.Run("another browser's InResponseTo", func(t *testing.T) {
		alice, mallory := h.begin(t), h.begin(t)
		// Mallory posts a response issued for Alice's request with her
		// own RelayState and cookie.
		spec := h.spec(alice)
		_, _, err := h.callback(t, mallory, h.forge(t, spec, mallory.relayState, nil))
		if codeOf(err) != CodeInResponseTo {
			t.Fatalf("own flow, other's request: %v", err)
		}
		// ... or with Alice's RelayState, without Alice's cookie.
		_, _, err = h.callback(t, mallory, h.forge(t, spec, alice.relayState, nil))
		if codeOf(err) != CodeFlowMissing {
			t.Fatalf("other's flow, no cookie: %v", err)
		}
	})
	t.Run("flow cookie tampered", func(t *testing.T) {
		pend := h.begin(t)
		pend.cookies[0].Value = pend.cookies[0].Value[:len(pend.cookies[0].Value)-4] + "AAAA"
		_, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil))
		if codeOf(err) != CodeFlowInvalid {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("flow cookie expired", func(t *testing.T) {
		pend := h.begin(t)
		h.flows.Now = func() time.Time { return time.Now().Add(time.Hour) }
		defer func() { h.flows.Now = nil }()
		_, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil))
		if codeOf(err) != CodeFlowExpired {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("posted to another site's ACS", func(t *testing.T) {
		pend := h.begin(t)
		other := h.site.URL + "/.sso/saml/other/"
		spec := h.spec(pend)
		spec.ACS, spec.Audience = other+"acs", other+"metadata"
		r := httptest.NewRequest(http.MethodPost, other+"acs", strings.NewReader(h.forge(t, spec, pend.relayState, nil).Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range pend.cookies {
			r.AddCookie(c)
		}
		_, _, err := h.p.Callback(httptest.NewRecorder(), r, other)
		if codeOf(err) != CodeACSMismatch {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("GET", func(t *testing.T) {
		_, _, err := h.p.Callback(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, h.acs(), nil), h.base)
		if codeOf(err) != CodeMethodNotAllowed {
			t.Fatalf("got %v", err)
		}
	})
}

// TestACSReplay: an assertion is accepted once, also by a new Provider (as
// after a restart) whose sign-ins consume their single-use IDs in the same
// persistent register (the store, here the harness's memReplay).
func TestACSReplay(t *testing.T) {
	h := newHarness(t)
	pend := h.begin(t)
	form := h.forge(t, h.spec(pend), pend.relayState, nil)
	if _, _, err := h.callback(t, pend, form); err != nil {
		t.Fatal(err)
	}
	// The browser's cookie was cleared, but an attacker who copied it and
	// the response replays both.
	if _, _, err := h.callback(t, pend, form); codeOf(err) != CodeReplayed {
		t.Fatalf("replay: %v", err)
	}
	h.p = h.newProvider()
	if _, _, err := h.callback(t, pend, form); codeOf(err) != CodeReplayed {
		t.Fatalf("replay after restart: %v", err)
	}
	t.Run("IdP-initiated replay", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AllowIdPInitiated = true })
		spec := h.spec(pending{})
		form := h.forge(t, spec, "/x", nil)
		if _, rt, err := h.callback(t, pending{}, form); err != nil || rt != "/x" {
			t.Fatalf("first: %q %v", rt, err)
		}
		if _, _, err := h.callback(t, pending{}, form); codeOf(err) != CodeReplayed {
			t.Fatalf("replay: %v", err)
		}
	})
}

// TestACSLostFlowWithIdPInitiated: a response that answers an AuthnRequest
// (it carries an InResponseTo) is SP-initiated whatever AllowIdPInitiated
// says. When its flow cookie is gone or expired (the person took too long at
// the IdP) it is refused as a lost flow, unbound like every refusal without
// the cookie, exactly as with the option off, and never tried as
// IdP-initiated. Only a response without InResponseTo takes that path, and
// crewjam still refuses one whose InResponseTo the pre-check cannot see.
func TestACSLostFlowWithIdPInitiated(t *testing.T) {
	responseWithout := func(s *samltest.ResponseSpec) {
		s.Response = func(r *saml.Response) { r.InResponseTo = "" }
	}
	cases := []struct {
		name string
		// noCookie posts without the flow cookie; late posts it after
		// LoginTimeout.
		noCookie, late bool
		spec           func(s *samltest.ResponseSpec)
		// relayState replaces the pending login's.
		relayState string
		// wantOff and wantOn are the codes with the option off and on;
		// "" is accepted.
		wantOff, wantOn string
	}{
		{name: "cookie missing", noCookie: true, wantOff: CodeFlowMissing, wantOn: CodeFlowMissing},
		{name: "cookie expired", late: true, wantOff: CodeFlowExpired, wantOn: CodeFlowExpired},
		{name: "cookie missing, InResponseTo on the assertion only", noCookie: true, spec: responseWithout,
			wantOff: CodeFlowMissing, wantOn: CodeFlowMissing},
		{name: "RelayState not ours", relayState: "/reports", wantOff: CodeUnsolicited, wantOn: CodeUnsolicited},
		// The pre-check cannot read an encrypted assertion: the response
		// is tried as IdP-initiated, and crewjam refuses its InResponseTo.
		{name: "cookie missing, InResponseTo in the encrypted assertion only", noCookie: true,
			spec: func(s *samltest.ResponseSpec) {
				responseWithout(s)
				s.EncryptTo = testKeys()[0].Certificate
			}, wantOff: CodeFlowMissing, wantOn: CodeInResponseTo},
		{name: "cookie missing, no InResponseTo", noCookie: true, spec: func(s *samltest.ResponseSpec) { s.InResponseTo = "" },
			wantOff: CodeFlowMissing, wantOn: ""},
	}
	for _, allow := range []bool{false, true} {
		h := newHarness(t, func(c *Config) { c.AllowIdPInitiated = allow })
		for _, tc := range cases {
			want := map[bool]string{false: tc.wantOff, true: tc.wantOn}[allow]
			t.Run(fmt.Sprintf("%s/idp_initiated=%v", tc.name, allow), func(t *testing.T) {
				pend := h.begin(t)
				spec := h.spec(pend)
				if tc.spec != nil {
					tc.spec(&spec)
				}
				relayState := pend.relayState
				if tc.relayState != "" {
					relayState = tc.relayState
				}
				form := h.forge(t, spec, relayState, nil)
				if tc.noCookie {
					pend.cookies = nil
				}
				if tc.late {
					h.flows.Now = func() time.Time { return time.Now().Add(idp.DefaultLoginTimeout + time.Minute) }
					defer func() { h.flows.Now = nil }()
				}
				a, _, err := h.callback(t, pend, form)
				if got := codeOf(err); got != want {
					t.Fatalf("code = %q, want %q (err: %v)", got, want, err)
				}
				if want == "" {
					if a == nil || a.Subject != "ada" {
						t.Fatalf("accepted assertion = %+v", a)
					}
					return
				}
				var le *idp.LoginError
				if !errors.As(err, &le) || le.Bound || a != nil {
					t.Fatalf("refusal without this browser's flow: Bound = %v, assertion %v (err %v)", le != nil && le.Bound, a, err)
				}
			})
		}
	}
}

// TestIdPInitiatedRelayState: with IdP-initiated login on, the RelayState
// is attacker-controlled; every payload of the shared open-redirect list
// must come back as a same-origin path ("/" or the payload itself, when it
// already is one, such as "/https://google.com/").
func TestIdPInitiatedRelayState(t *testing.T) {
	payloads := redirecttest.Payloads()
	h := newHarness(t, func(c *Config) { c.AllowIdPInitiated = true })
	// RelayState is not signed, so one response serves every payload; the
	// harness's register of used IDs is reset between posts, as if each
	// were a fresh login.
	form := h.forge(t, h.spec(pending{}), "", nil)
	site, _ := url.Parse("https://app.example.com/some/page")
	for i, payload := range payloads {
		// Callback uses idp.LocalPath for the RelayState; every payload goes
		// through it, and through the whole ACS (a sample of them under
		// the race detector, where each costs some 25 ms).
		got := idp.LocalPath(payload)
		if !raceEnabled || i%8 == 0 {
			h.replay.reset()
			form.Set("RelayState", payload)
			_, rt, err := h.callback(t, pending{}, form)
			if err != nil {
				t.Fatalf("payload %q: %v", payload, err)
			}
			if rt != got {
				t.Fatalf("payload %q: Callback returned %q, LocalPath %q", payload, rt, got)
			}
		}
		if got != "/" && got != payload {
			t.Errorf("payload %q rewritten to %q", payload, got)
		}
		u, err := site.Parse(got)
		if err != nil || u.Host != "app.example.com" || u.Scheme != "https" || strings.HasPrefix(got, "//") || strings.Contains(got, "\\") {
			t.Errorf("payload %q → %q leaves the site (%v)", payload, got, u)
		}
		if got != "/" {
			t.Logf("payload kept as a local path: %q", payload)
		}
	}
	for _, ok := range []string{"/", "/reports?q=1", "/a/b#frag", "/%E2%9C%93"} {
		if got := idp.LocalPath(ok); got != ok {
			t.Errorf("local path %q rewritten to %q", ok, got)
		}
	}
}

// TestLooksLikeRelayState: only what newRelayState makes (26 characters of
// the base32 alphabet) names a flow cookie; anything else is taken as an
// IdP-initiated RelayState.
func TestLooksLikeRelayState(t *testing.T) {
	for range 20 {
		if s := newRelayState(); !looksLikeRelayState(s) {
			t.Fatalf("newRelayState() = %q is not taken for one", s)
		}
	}
	ok := newRelayState()
	for _, s := range []string{"", ok[:25], ok + "A", strings.ToLower(ok), "/" + ok[1:],
		ok[:25] + "0", ok[:25] + "1", ok[:25] + "8", ok[:25] + "9", ok[:25] + "="} {
		if looksLikeRelayState(s) {
			t.Errorf("%q taken for a RelayState of ours", s)
		}
	}
}

// TestSingleUseIDsNameTheIdP: the single-use IDs an accepted assertion and
// LogoutRequest hand to the store carry the IdP's name, so that two IdPs
// that happen to issue the same ID cannot use up each other's.
func TestSingleUseIDsNameTheIdP(t *testing.T) {
	h := newHarness(t)
	pend := h.begin(t)
	spec := h.spec(pend)
	spec.Assertion = func(a *saml.Assertion) { a.ID = "id-shared" }
	a, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.SingleUse) != 1 || a.SingleUse[0].ID != "test/id-shared" || a.SingleUse[0].Code != CodeReplayed {
		t.Fatalf("SingleUse = %+v, want test/id-shared", a.SingleUse)
	}
	var once *idp.SingleUse
	if err := h.p.HandleSLO(httptest.NewRecorder(), h.logoutRequest(t, samltest.LogoutRequestSpec{Destination: h.slo(), NameID: "ada", Sign: true}, "", false), h.base,
		func(_ context.Context, _ string, _ []string, o *idp.SingleUse) error { once = o; return nil }); err != nil {
		t.Fatal(err)
	}
	if once == nil || !strings.HasPrefix(once.ID, "test/LogoutRequest:") {
		t.Fatalf("LogoutRequest single-use = %+v, want an ID under test/", once)
	}
}

// TestRefuseDeclarationsWhateverTheEncoding: the declared encoding does
// not hide a DOCTYPE: one after an encoding Go does not know is refused
// as a DOCTYPE, and a document in such an encoding without one passes
// the guard (crewjam then judges it).
func TestRefuseDeclarationsWhateverTheEncoding(t *testing.T) {
	for _, enc := range []string{"UTF-8", "ISO-8859-1", "x-unknown"} {
		decl := `<?xml version="1.0" encoding="` + enc + `"?>`
		if err := refuseDeclarations([]byte(decl + `<!DOCTYPE r [<!ENTITY e "x">]><r/>`)); !errors.Is(err, errDoctype) {
			t.Errorf("%s: DOCTYPE: %v, want errDoctype", enc, err)
		}
		if err := refuseDeclarations([]byte(decl + `<r><!-- a comment --><![CDATA[x]]></r>`)); err != nil {
			t.Errorf("%s: comment and CDATA: %v, want nil", enc, err)
		}
	}
}
