package saml

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// TestLogin runs complete SP-initiated logins through the samltest IdP with
// a cookie-jar browser: Begin's redirect, the IdP's login form, the
// auto-posted response, the ACS. The IdP shapes its attributes like Entra
// ID, Okta and PingOne, and the assertion must carry all of them by Name,
// with the NameID as subject; the mapping presets then find the four
// documented attributes in them.
func TestLogin(t *testing.T) {
	overage := person
	overage.GroupsOverage = true
	overage.TenantID = "tenant-1"
	cases := []struct {
		name   string
		user   samltest.User
		preset string
		opts   []harnessOpt
		// signResponse/signAssertion/encrypt configure the IdP.
		signResponse, signAssertion, encrypt bool
		wantGroups                           []string
		wantOverage                          bool
	}{
		{name: "entra claim URIs, assertion signed only", user: samltest.Entra("ada", "pw", person), preset: mapping.PresetEntra,
			signAssertion: true, encrypt: false, wantGroups: person.Groups},
		{name: "entra product-doc claims, encrypted", user: samltest.EntraCustom("ada", "pw", person), preset: mapping.PresetEntra,
			signAssertion: true, encrypt: true, wantGroups: person.Groups},
		{name: "entra group overage", user: samltest.Entra("ada", "pw", overage), preset: mapping.PresetEntra,
			signAssertion: true, wantOverage: true},
		{name: "okta, both signed, encrypted", user: samltest.Okta("ada", "pw", person), preset: mapping.PresetOkta,
			signResponse: true, signAssertion: true, encrypt: true, wantGroups: person.Groups},
		{name: "okta, response signed only", user: samltest.Okta("ada", "pw", person), preset: mapping.PresetOkta,
			signResponse: true, wantGroups: person.Groups},
		{name: "pingone, signed AuthnRequest", user: samltest.PingOne("ada", "pw", person), preset: mapping.PresetPingOne,
			signResponse: true, signAssertion: true, encrypt: true, wantGroups: person.Groups,
			opts: []harnessOpt{func(c *Config) { c.SignRequests = true }}},
		{name: "pingone, HTTP-POST AuthnRequest", user: samltest.PingOne("ada", "pw", person), preset: mapping.PresetPingOne,
			signResponse: true, signAssertion: true, encrypt: true, wantGroups: person.Groups,
			opts: []harnessOpt{func(c *Config) { c.RequestBinding = BindingPost; c.SignRequests = true }}},
		{name: "rotation: second key pair published", user: samltest.Okta("ada", "pw", person), preset: mapping.PresetOkta,
			signResponse: true, signAssertion: true, encrypt: true, wantGroups: person.Groups,
			opts: []harnessOpt{func(c *Config) { c.SPKeys = []KeyPair{testKeys()[0], testKeys()[1]} }}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			h.idp.SetSigning(tc.signResponse, tc.signAssertion)
			h.idp.SetEncryption(tc.encrypt, nil)
			h.idp.AddUser(tc.user)
			b := newBrowser(t)
			res := h.login(b, "ada", "pw", "/app/page?x=1")
			if res.Error != "" {
				t.Fatalf("login refused: %s", res.Error)
			}
			a := res.Assertion
			if res.ReturnTo != "/app/page?x=1" {
				t.Errorf("returnTo = %q", res.ReturnTo)
			}
			if a.IdP != "test" || a.Protocol != idp.ProtocolSAML || a.EmailVerified {
				t.Errorf("IdP/Protocol/EmailVerified = %q/%q/%v", a.IdP, a.Protocol, a.EmailVerified)
			}
			if a.Subject != tc.user.NameID || a.SubjectFormat != tc.user.NameIDFormat {
				t.Errorf("subject = %q (%q), want %q (%q)", a.Subject, a.SubjectFormat, tc.user.NameID, tc.user.NameIDFormat)
			}
			if !reflect.DeepEqual(a.Attributes, tc.user.Attributes) {
				t.Errorf("attributes =\n%v\nwant\n%v", a.Attributes, tc.user.Attributes)
			}
			if a.Logout.Subject != a.Subject || a.Logout.SubjectFormat != a.SubjectFormat || len(a.Logout.SessionID) < 16 {
				t.Errorf("logout info = %+v", a.Logout)
			}
			m, err := mapping.New(tc.preset, idp.ProtocolSAML, nil)
			if err != nil {
				t.Fatal(err)
			}
			prof, err := m.Map(a)
			if err != nil {
				t.Fatalf("mapping: %v", err)
			}
			want := mapping.Profile{UniqueUserID: person.ID, FirstName: person.FirstName, LastName: person.LastName,
				Email: person.Email, Groups: tc.wantGroups, HasGroups: tc.wantGroups != nil, GroupsOverage: tc.wantOverage}
			if !reflect.DeepEqual(prof, want) {
				t.Errorf("profile = %+v, want %+v", prof, want)
			}

			// A second login reuses the IdP session (no form) and is a
			// new, accepted assertion.
			p := b.autoSubmit(b.get(h.site.URL + "/login?return_to=/again"))
			if !strings.Contains(p.Body, `"ReturnTo":"/again"`) {
				t.Errorf("second login: %s", short(p.Body))
			}
		})
	}
}

// TestLoginIdPInitiated logs in from the IdP's side when allowed, and is
// refused when not.
func TestLoginIdPInitiated(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "disabled", true: "enabled"}[allow], func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.AllowIdPInitiated = allow })
			h.idp.AddUser(oktaUser)
			b := newBrowser(t)
			p := b.get(h.idp.IdPInitiatedURL(h.entityID(), "/reports?q=1"))
			p = b.autoSubmit(b.submit(p, url.Values{"username": {"ada"}, "password": {"pw"}}))
			if !allow {
				if p.Status != http.StatusForbidden || !strings.Contains(p.Body, CodeUnsolicited) {
					t.Fatalf("IdP-initiated login with the option off: %d %s", p.Status, p.Body)
				}
				return
			}
			if p.Status != http.StatusOK || !strings.Contains(p.Body, `"ReturnTo":"/reports?q=1"`) || !strings.Contains(p.Body, `"Subject":"ada"`) {
				t.Fatalf("IdP-initiated login: %d %s", p.Status, p.Body)
			}
		})
	}
}

// TestMetadataContent checks the SP metadata an IdP administrator uploads.
func TestMetadataContent(t *testing.T) {
	keys := testKeys()
	cases := []struct {
		name   string
		opts   harnessOpt
		keys   int
		signed bool
		entity string
	}{
		{name: "one key", opts: func(c *Config) {}, keys: 1},
		{name: "rotation", opts: func(c *Config) { c.SPKeys = []KeyPair{keys[0], keys[1]} }, keys: 2},
		{name: "signed requests, fixed entity ID", opts: func(c *Config) { c.SignRequests = true; c.EntityID = "urn:example:sp" },
			keys: 1, signed: true, entity: "urn:example:sp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts)
			resp, err := http.Get(h.base + "metadata")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != "application/samlmetadata+xml" {
				t.Errorf("Content-Type = %q", ct)
			}
			var ed saml.EntityDescriptor
			if err := xml.Unmarshal(body, &ed); err != nil {
				t.Fatal(err)
			}
			want := tc.entity
			if want == "" {
				want = h.entityID()
			}
			if ed.EntityID != want {
				t.Errorf("entityID = %q, want %q", ed.EntityID, want)
			}
			if len(ed.SPSSODescriptors) != 1 {
				t.Fatalf("%d SPSSODescriptors", len(ed.SPSSODescriptors))
			}
			d := ed.SPSSODescriptors[0]
			if len(d.AssertionConsumerServices) != 1 || d.AssertionConsumerServices[0].Binding != saml.HTTPPostBinding ||
				d.AssertionConsumerServices[0].Location != h.acs() {
				t.Errorf("ACS = %+v", d.AssertionConsumerServices)
			}
			var slo []string
			for _, e := range d.SingleLogoutServices {
				if e.Location != h.slo() {
					t.Errorf("SLO location %q", e.Location)
				}
				slo = append(slo, e.Binding)
			}
			if !slices.Equal(slo, []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding}) {
				t.Errorf("SLO bindings = %v", slo)
			}
			certs := map[string][]string{}
			for _, kd := range d.KeyDescriptors {
				for _, c := range kd.KeyInfo.X509Data.X509Certificates {
					certs[kd.Use] = append(certs[kd.Use], strings.Join(strings.Fields(c.Data), ""))
				}
			}
			for _, use := range []string{"signing", "encryption"} {
				if len(certs[use]) != tc.keys {
					t.Errorf("%d %s certificates, want %d", len(certs[use]), use, tc.keys)
					continue
				}
				for i := range tc.keys {
					if want := b64(keys[i].Certificate.Raw); certs[use][i] != want {
						t.Errorf("%s certificate %d is not key pair %d's", use, i, i)
					}
				}
			}
			if d.AuthnRequestsSigned == nil || *d.AuthnRequestsSigned != tc.signed {
				t.Errorf("AuthnRequestsSigned = %v, want %v", d.AuthnRequestsSigned, tc.signed)
			}
			if d.WantAssertionsSigned == nil || !*d.WantAssertionsSigned {
				t.Error("WantAssertionsSigned not set")
			}
			var formats []string
			for _, f := range d.NameIDFormats {
				formats = append(formats, string(f))
			}
			if !slices.Contains(formats, string(saml.PersistentNameIDFormat)) || !slices.Contains(formats, string(saml.EmailAddressNameIDFormat)) {
				t.Errorf("NameID formats = %v", formats)
			}
		})
	}
}

// TestBegin checks the AuthnRequest and flow cookie Begin produces.
func TestBegin(t *testing.T) {
	t.Run("redirect binding", func(t *testing.T) {
		h := newHarness(t)
		pend := h.begin(t)
		if !strings.HasPrefix(pend.location, h.idp.SSOURL()+"?") {
			t.Errorf("redirect to %s", pend.location)
		}
		if !looksLikeRelayState(pend.relayState) {
			t.Errorf("RelayState %q", pend.relayState)
		}
		loc, _ := url.Parse(pend.location)
		var ar saml.AuthnRequest
		if err := xml.Unmarshal(decodeRedirect(t, loc.Query().Get("SAMLRequest")), &ar); err != nil {
			t.Fatal(err)
		}
		if ar.AssertionConsumerServiceURL != h.acs() || ar.ProtocolBinding != saml.HTTPPostBinding ||
			ar.Issuer == nil || ar.Issuer.Value != h.entityID() || ar.Destination != h.idp.SSOURL() {
			t.Errorf("AuthnRequest = %+v", ar)
		}
		if loc.Query().Has("Signature") {
			t.Error("unsigned by default, yet signed")
		}
		if len(pend.cookies) != 1 || !idp.IsFlowCookie(pend.cookies[0].Name) || !pend.cookies[0].HttpOnly {
			t.Errorf("flow cookie = %+v", pend.cookies)
		}
	})
	t.Run("signed redirect", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.SignRequests = true })
		loc, _ := url.Parse(h.begin(t).location)
		if loc.Query().Get("SigAlg") != signatureMethod || loc.Query().Get("Signature") == "" {
			t.Errorf("signed redirect lacks SigAlg/Signature: %s", loc)
		}
	})
	t.Run("post binding", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.RequestBinding = BindingPost })
		rec := httptest.NewRecorder()
		if err := h.p.Begin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), h.base, idp.SignInRequest{ReturnTo: "/x"}); err != nil {
			t.Fatal(err)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `name="SAMLRequest"`) ||
			!strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(rec.Body.String(), h.idp.SSOURL()) {
			t.Errorf("POST binding page: %d %q\n%s", rec.Code, csp, rec.Body)
		}
	})
	t.Run("return_to is reduced to a local path", func(t *testing.T) {
		h := newHarness(t)
		h.idp.AddUser(oktaUser)
		for _, rt := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example"} {
			res := h.login(newBrowser(t), "ada", "pw", rt)
			if res.Error != "" || res.ReturnTo != "/" {
				t.Errorf("return_to %q: got %q (%s)", rt, res.ReturnTo, res.Error)
			}
		}
	})
	t.Run("bad base", func(t *testing.T) {
		h := newHarness(t)
		for _, base := range []string{"/relative/", "https://x.example/no-slash", "https://x.example/?q=1/", "ftp://x.example/"} {
			err := h.p.Begin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), base, idp.SignInRequest{ReturnTo: "/"})
			if codeOf(err) != CodeBadBase {
				t.Errorf("base %q: %v", base, err)
			}
		}
	})
}
