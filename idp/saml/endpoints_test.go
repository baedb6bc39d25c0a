package saml

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
)

// TestEndpointsAreServed: every endpoint Endpoints lists, by which the
// gateway labels metrics and caddy sso check lists the URLs to register,
// is one ServeEndpoint serves (anything but idp.ErrNoEndpoint, the
// gateway's 404), and the names it does not list, the ACS and OIDC's
// among them, are not served.
func TestEndpointsAreServed(t *testing.T) {
	s := newStoreSLO(t) // a provider that ends sessions, as the gateway starts it
	listed := Endpoints()
	if len(listed) == 0 {
		t.Fatal("Endpoints lists none")
	}
	for _, ep := range listed {
		if ep.Name == "" || ep.Field == "" {
			t.Errorf("endpoint %+v: want a name and a registration field", ep)
		}
		w := httptest.NewRecorder()
		err := s.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, s.base+ep.Name, nil), s.base, ep.Name)
		if errors.Is(err, idp.ErrNoEndpoint) || w.Code == http.StatusNotFound {
			t.Errorf("listed endpoint %q not served: %v, %d", ep.Name, err, w.Code)
		}
	}
	for _, name := range []string{"", idp.SAMLCallbackEndpoint, idp.OIDCCallbackEndpoint, oidc.BackChannelLogoutEndpoint, oidc.FrontChannelLogoutEndpoint, "logout"} {
		w := httptest.NewRecorder()
		if err := s.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, s.base+name, nil), s.base, name); !errors.Is(err, idp.ErrNoEndpoint) || w.Body.Len() != 0 {
			t.Errorf("unlisted endpoint %q: %v (wrote %d bytes), want idp.ErrNoEndpoint and nothing written", name, err, w.Body.Len())
		}
	}
}
