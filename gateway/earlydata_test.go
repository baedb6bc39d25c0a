package gateway

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// reachedProvider is an idp.Provider that notes each request that reaches
// it: its callback refuses the answer (as a forged one is refused), its
// other endpoints answer 200.
type reachedProvider struct {
	idp.Provider   // any other method: not expected here
	name, protocol string
	reached        []string
}

func (p *reachedProvider) Name() string     { return p.name }
func (p *reachedProvider) Protocol() string { return p.protocol }

func (p *reachedProvider) Callback(_ http.ResponseWriter, r *http.Request, _ string) (*idp.Assertion, string, error) {
	p.reached = append(p.reached, r.Method+" "+r.URL.Path)
	return nil, "", &idp.LoginError{Code: "invalid_response", Err: errors.New("test: refused")}
}

func (p *reachedProvider) ServeEndpoint(w http.ResponseWriter, r *http.Request, _, _ string) error {
	p.reached = append(p.reached, r.Method+" "+r.URL.Path)
	w.WriteHeader(http.StatusOK)
	return nil
}

// TestEarlyDataPostsTooEarly: a POST to the gateway's own endpoints that
// came in TLS early data (HTTP/3 0-RTT), which anyone on the path can
// replay, is answered 425 Too Early (RFC 8470) before anything acts on it:
// the SAML ACS, SAML slo, OIDC back-channel logout, sign-out, and an ACS of
// an IdP the route no longer has. The same POST after the handshake, and a
// GET in early data, are served as ever.
func TestEarlyDataPostsTooEarly(t *testing.T) {
	run := newTestRuntime(t)
	o := dutyOrigin()

	for _, tc := range []struct {
		name, method, path string
		early              bool
		tooEarly           bool
	}{
		{"SAML ACS", http.MethodPost, "/.sso/saml/corp/acs", true, true},
		{"SAML slo", http.MethodPost, "/.sso/saml/corp/slo", true, true},
		{"OIDC back-channel logout", http.MethodPost, "/.sso/oidc/work/backchannel-logout", true, true},
		{"sign-out", http.MethodPost, "/.sso/logout", true, true},
		{"ACS of an IdP gone", http.MethodPost, "/.sso/saml/old/acs", true, true},
		{"back-channel logout after the handshake", http.MethodPost, "/.sso/oidc/work/backchannel-logout", false, false},
		{"SAML metadata in early data", http.MethodGet, "/.sso/saml/corp/metadata", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			corp := &reachedProvider{name: "corp", protocol: idp.ProtocolSAML}
			work := &reachedProvider{name: "work", protocol: idp.ProtocolOIDC}
			rt := &Route{PathPrefix: "/.sso/", IdPs: []*IdP{
				{Name: "corp", Protocol: idp.ProtocolSAML, Provider: corp},
				{Name: "work", Protocol: idp.ProtocolOIDC, Provider: work},
			}}
			r := httptest.NewRequest(tc.method, "https://app.example.com"+tc.path,
				strings.NewReader("SAMLResponse=x&RelayState=rs-1&logout_token=x"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Origin", "https://app.example.com")
			r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: !tc.early}
			r = idp.WithOrigin(r, o.Site)

			err := rt.ServeEndpoint(httptest.NewRecorder(), r, run, o, nil, nil)
			var ge *Error
			got425 := errors.As(err, &ge) && ge.Status == http.StatusTooEarly
			if got425 != tc.tooEarly {
				t.Errorf("%s %s (early data %v): answer %v, want 425 %v", tc.method, tc.path, tc.early, err, tc.tooEarly)
			}
			reached := append(corp.reached, work.reached...)
			if tc.tooEarly && len(reached) > 0 {
				t.Errorf("the provider acted on early data: %q", reached)
			}
			if !tc.tooEarly && len(reached) != 1 {
				t.Errorf("the provider was reached %q, want once", reached)
			}
		})
	}
}
