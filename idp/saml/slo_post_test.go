package saml

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/htmlform"
)

// sentLogout is the LogoutRequest that Logout sent the browser to the IdP
// with, in whichever binding it chose.
type sentLogout struct {
	Request    saml.LogoutRequest
	RelayState string
	// Binding is saml.HTTPPostBinding (an auto-submitting form to Action
	// with Form) or saml.HTTPRedirectBinding (a redirect to Location).
	Binding  string
	Action   string
	Form     url.Values
	Location *url.URL
}

// sentLogoutRequest reads the LogoutRequest that Logout wrote to rec.
func sentLogoutRequest(t testing.TB, rec *httptest.ResponseRecorder) sentLogout {
	t.Helper()
	var s sentLogout
	var raw []byte
	if loc := rec.Header().Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil || u.Query().Get("SAMLRequest") == "" {
			t.Fatalf("Logout redirected without a SAMLRequest: %d %v", rec.Code, rec.Header())
		}
		s.Binding, s.Location, s.RelayState = saml.HTTPRedirectBinding, u, u.Query().Get("RelayState")
		raw = decodeRedirect(t, u.Query().Get("SAMLRequest"))
	} else {
		action, form, ok := htmlform.First(&url.URL{Scheme: "https", Host: "sp.test", Path: "/logout"}, rec.Body.String())
		if !ok || form.Get("SAMLRequest") == "" {
			t.Fatalf("Logout wrote neither a redirect nor a form with a SAMLRequest: %d %v\n%s", rec.Code, rec.Header(), short(rec.Body.String()))
		}
		var err error
		if raw, err = base64.StdEncoding.DecodeString(form.Get("SAMLRequest")); err != nil {
			t.Fatal(err)
		}
		s.Binding, s.Action, s.Form, s.RelayState = saml.HTTPPostBinding, action, form, form.Get("RelayState")
	}
	if err := xml.Unmarshal(raw, &s.Request); err != nil {
		t.Fatalf("LogoutRequest: %v\n%s", err, raw)
	}
	return s
}

// signatureMethod is the algorithm the LogoutRequest is signed with: the
// query's SigAlg (HTTP-Redirect) or the enveloped signature's (HTTP-POST).
func (s sentLogout) signatureMethod() string {
	if s.Location != nil {
		if s.Location.Query().Get("Signature") == "" {
			return ""
		}
		return s.Location.Query().Get("SigAlg")
	}
	if s.Request.Signature == nil {
		return ""
	}
	if m := s.Request.Signature.FindElement("./SignedInfo/SignatureMethod"); m != nil {
		return m.SelectAttrValue("Algorithm", "")
	}
	return ""
}

// TestSLOLogoutRequestNotInURL: an SP-initiated LogoutRequest names the
// person (its NameID, here the email, is only deflated and base64 encoded
// in a URL), so it goes to the IdP in a form body whenever the IdP's
// metadata offers HTTP-POST, whatever order it lists its bindings in: a
// redirect's Location reaches Caddy's access log and the browser's
// history. Only an IdP that offers HTTP-Redirect alone (Entra ID) gets it
// in a URL. The form page is the one every message to the IdP uses: its
// script runs only by nonce, and it is not stored.
func TestSLOLogoutRequestNotInURL(t *testing.T) {
	info := idp.LogoutInfo{Subject: "ada@example.com", SubjectFormat: string(saml.EmailAddressNameIDFormat), SessionID: "idx-1"}
	for _, tc := range []struct {
		name     string
		bindings []string
		want     string
	}{
		{"redirect listed first", []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding}, saml.HTTPPostBinding},
		{"post listed first", []string{saml.HTTPPostBinding, saml.HTTPRedirectBinding}, saml.HTTPPostBinding},
		{"post only", []string{saml.HTTPPostBinding}, saml.HTTPPostBinding},
		{"redirect only", []string{saml.HTTPRedirectBinding}, saml.HTTPRedirectBinding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.idp.SetLogoutBindings(tc.bindings...)
			rec := httptest.NewRecorder()
			sent, err := h.p.Logout(rec, httptest.NewRequest(http.MethodGet, h.site.URL+"/logout", nil), h.base, info, "/bye")
			if !sent || err != nil {
				t.Fatalf("Logout: sent %v, %v", sent, err)
			}
			got := sentLogoutRequest(t, rec)
			if got.Binding != tc.want {
				t.Fatalf("LogoutRequest sent with %s, want %s (Location %q)", got.Binding, tc.want, rec.Header().Get("Location"))
			}
			lr := got.Request
			if lr.NameID == nil || lr.NameID.Value != info.Subject || lr.SessionIndex == nil || lr.SessionIndex.Value != "idx-1" ||
				lr.Destination != h.idp.SLOURL() || got.RelayState == "" {
				t.Fatalf("LogoutRequest = %+v %+v, RelayState %q", lr, lr.NameID, got.RelayState)
			}
			if rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", rec.Header().Get("Cache-Control"))
			}
			if got.Binding == saml.HTTPRedirectBinding {
				return
			}
			if rec.Code != http.StatusOK || got.Action != h.idp.SLOURL() {
				t.Errorf("form page %d posts to %q, want 200 to %q", rec.Code, got.Action, h.idp.SLOURL())
			}
			if got.signatureMethod() != signatureMethod {
				t.Errorf("the posted LogoutRequest is signed with %q, want %s", got.signatureMethod(), signatureMethod)
			}
			for name, vs := range rec.Header() {
				for _, v := range vs {
					if strings.Contains(v, "SAMLRequest") || strings.Contains(v, info.Subject) {
						t.Errorf("header %s carries the LogoutRequest: %q", name, v)
					}
				}
			}
			csp := rec.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "frame-ancestors 'none'") ||
				rec.Header().Get("Referrer-Policy") != "no-referrer" || !htmlform.AutoPosts(rec.Body.String()) {
				t.Errorf("form page: CSP %q, Referrer-Policy %q, auto-posts %v", csp, rec.Header().Get("Referrer-Policy"), htmlform.AutoPosts(rec.Body.String()))
			}
		})
	}
}

// TestSLOLogoutResponseNamesNobody: the LogoutResponse the SP answers an
// IdP-initiated LogoutRequest with goes back in the binding the request
// came in (the IdP chose it, and put its own request, NameID and all, in
// the URL already when it chose HTTP-Redirect). It names nobody: no NameID,
// no SessionIndex, only the request's ID and a status.
func TestSLOLogoutResponseNamesNobody(t *testing.T) {
	h := newHarness(t)
	spec := samlLogoutSpec(h, "ada@example.com")
	rec := httptest.NewRecorder()
	if err := h.p.HandleSLO(rec, h.logoutRequest(t, spec, "rs", false), h.base, h.endSessions); err != nil {
		t.Fatal(err)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loc.Query().Get("SAMLResponse") == "" {
		t.Fatalf("no LogoutResponse: %d %v", rec.Code, rec.Header())
	}
	raw := string(decodeRedirect(t, loc.Query().Get("SAMLResponse")))
	if strings.Contains(raw, "ada@example.com") || strings.Contains(raw, "NameID") || strings.Contains(raw, "SessionIndex") || strings.Contains(raw, "idx-1") {
		t.Fatalf("the LogoutResponse names the person:\n%s", raw)
	}
}

// samlLogoutSpec is a signed IdP LogoutRequest to h's SLO endpoint for nameID.
func samlLogoutSpec(h *harness, nameID string) samltest.LogoutRequestSpec {
	return samltest.LogoutRequestSpec{Destination: h.slo(), NameID: nameID, SessionIndexes: []string{"idx-1"}, Sign: true}
}
