package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/metrics"
)

// TestEndpointLabelsAreTheGateways: the endpoint label is the gateway's
// name for what it served (gateway.EndpointLabel), so an endpoint the
// gateway adds is timed under its own name, not as "other": the
// sign-in-failed page a SAML callback redirects to among them.
func TestEndpointLabelsAreTheGateways(t *testing.T) {
	for _, tt := range []struct{ rest, want string }{
		{"signin-failed", "signin-failed"},
		{"jwks.json", "jwks.json"},
		{"saml/corp/metadata", "metadata"},
		{"oidc/entra/acs", "other"}, // SAML's endpoint name under an OpenID Connect IdP: served by nothing
	} {
		reg := prometheus.NewRegistry()
		metrics.New(reg).Endpoint(tt.rest, time.Millisecond)
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range families {
			if f.GetName() != "caddy_sso_endpoint_duration_seconds" {
				continue
			}
			for _, s := range f.GetMetric() {
				got = append(got, s.GetLabel()[0].GetValue())
			}
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%q timed as endpoint %q, want %q", tt.rest, got, tt.want)
		}
	}
}
