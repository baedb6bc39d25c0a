package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
)

// refusingSLO is a SAML provider whose slo endpoint refuses the logout
// message it is sent, as one with a bad signature is refused.
type refusingSLO struct {
	idp.Provider
	sessionEnded bool
}

func (p refusingSLO) ServeEndpoint(http.ResponseWriter, *http.Request, string, string) error {
	return &idp.LoginError{Code: "saml_signature_invalid", Logout: true, SessionEnded: p.sessionEnded,
		Err: errors.New("test: signature does not verify")}
}

// TestRefusedLogoutMessage: a logout message the IdP's endpoint refuses
// is answered with the logout_incomplete page (400, the refusal's code
// for the administrator), which tells the person whether they are still
// signed in here, not handed on as a bare error; the operator reads a
// WARN line naming the IdP and the reason.
func TestRefusedLogoutMessage(t *testing.T) {
	world := newDutyWorld(t)
	for _, ended := range []bool{false, true} {
		core, logs := observer.New(zapcore.WarnLevel)
		p := &IdP{Name: "corp", Protocol: idp.ProtocolSAML, Provider: refusingSLO{sessionEnded: ended}}
		rt := &Route{PathPrefix: "/.sso/", Logger: zap.New(core), IdPs: []*IdP{p}, Default: p}
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/saml/corp/slo?SAMLRequest=x", nil)
		r.Header.Set("Accept", "text/html")
		r = idp.WithOrigin(r, dutyOrigin().Site)
		err := rt.ServeEndpoint(httptest.NewRecorder(), r, world.run, dutyOrigin(), nil, nil)
		pe, ok := AsPageError(err)
		if !ok {
			t.Fatalf("session ended %v: %v, want the logout_incomplete page", ended, err)
		}
		if pe.Name != PageLogoutIncomplete || pe.Status != http.StatusBadRequest || pe.Code != "saml_signature_invalid" || pe.IdP != "corp" || pe.SignedOut != ended {
			t.Errorf("session ended %v: page %s %d code %q IdP %q signed out %v", ended, pe.Name, pe.Status, pe.Code, pe.IdP, pe.SignedOut)
		}
		warns := logs.FilterMessage("logout message refused").All()
		if len(warns) != 1 || warns[0].ContextMap()["idp"] != "corp" || warns[0].ContextMap()["reason"] != "saml_signature_invalid" {
			t.Errorf("session ended %v: log %v, want one WARN with idp and reason", ended, logs.All())
		}
	}
}
