package saml

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// logoutRequestNameID is the NameID of the SP-initiated LogoutRequest that
// Logout sends for info.
func (h *harness) logoutRequestNameID(info idp.LogoutInfo) *saml.NameID {
	h.t.Helper()
	rec := httptest.NewRecorder()
	if _, err := h.p.Logout(rec, httptest.NewRequest(http.MethodGet, "/logout", nil), h.base, info, "/"); err != nil {
		h.t.Fatal(err)
	}
	lr := sentLogoutRequest(h.t, rec).Request
	if lr.NameID == nil {
		h.t.Fatal("LogoutRequest without a NameID")
	}
	return lr.NameID
}

// TestLogoutRequestNamesNameIDAsIssued: an IdP that issues a NameID with
// NameQualifier and SPNameQualifier (crewjam, Shibboleth IdP, AD FS) gets
// an SP-initiated LogoutRequest naming that NameID as issued, qualifiers
// and all (saml-core 3.3.4, saml-profiles 4.4.4.1; mod_auth_mellon echoes
// it): an IdP that compares qualifiers would otherwise find no session to
// end. A session stored before the qualifiers were kept names none, as
// before (not the ones crewjam would fill in).
func TestLogoutRequestNamesNameIDAsIssued(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var issued saml.NameID
	h.idp.SetHooks(samltest.Hooks{Assertion: func(a *saml.Assertion) {
		mu.Lock()
		defer mu.Unlock()
		if a.Subject != nil && a.Subject.NameID != nil {
			issued = *a.Subject.NameID
		}
	}})
	u := oktaUser
	u.NameID, u.NameIDFormat = "opaque-ada-123", string(saml.PersistentNameIDFormat)
	h.idp.AddUser(u)
	if res := h.login(newBrowser(t), "ada", "pw", "/app"); res.Error != "" {
		t.Fatal(res.Error)
	}
	mu.Lock()
	want := issued
	mu.Unlock()
	if want.NameQualifier == "" || want.SPNameQualifier == "" {
		t.Fatalf("the IdP issued no qualifiers: %+v", want)
	}
	h.mu.Lock()
	info := h.lastInfo
	h.mu.Unlock()
	if info.NameQualifier != want.NameQualifier || info.SPNameQualifier != want.SPNameQualifier {
		t.Errorf("the assertion's LogoutInfo has qualifiers %q, %q; want %q, %q",
			info.NameQualifier, info.SPNameQualifier, want.NameQualifier, want.SPNameQualifier)
	}
	got := h.logoutRequestNameID(info)
	if got.Value != want.Value || got.Format != want.Format ||
		got.NameQualifier != want.NameQualifier || got.SPNameQualifier != want.SPNameQualifier {
		t.Errorf("LogoutRequest NameID %+v, want the NameID as issued %+v", got, want)
	}

	old := info
	old.NameQualifier, old.SPNameQualifier = "", ""
	got = h.logoutRequestNameID(old)
	if got.Value != want.Value || got.Format != want.Format || got.NameQualifier != "" || got.SPNameQualifier != "" {
		t.Errorf("LogoutRequest NameID of a session stored without qualifiers: %+v, want value and format only", got)
	}
}
