package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/metrics"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/session"
)

const (
	entraOld = "entra-old-token-0123456789abcdef"
	entraNew = "entra-new-token-fedcba9876543210"
	oktaTok  = "okta-token-00112233445566778899"
)

// TestSCIMByIdPAndToken: on one SCIM site serving entra (being rotated:
// listed twice) and okta, scim_requests_total counts each request under
// the IdP whose token admitted it and that token's place in the IdP's
// list, so that the series of entra's old token (token="1") and its new
// one (token="2") move separately, and okta's failing client (a token no
// IdP has: idp="") is not hidden by entra's successes. Method and
// resource are still each from a fixed set, "other" for the rest.
func TestSCIMByIdPAndToken(t *testing.T) {
	db := backendtest.OpenBolt(t)
	accounts := &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil)}
	h, err := scim.Endpoint{IdPs: []scim.EndpointIdP{
		{Name: "entra", Token: entraOld}, {Name: "okta", Token: oktaTok}, {Name: "entra", Token: entraNew},
	}}.Handler(accounts, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	counted := metrics.New(reg).SCIM(h, "")
	send := func(n int, token, method, path string) {
		for range n {
			r := httptest.NewRequest(method, path, nil)
			r.Header.Set("Authorization", "Bearer "+token)
			counted.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	send(3, entraOld, http.MethodGet, "/scim/v2/Users")
	send(2, entraNew, http.MethodGet, "/scim/v2/Users")
	send(1, entraNew, http.MethodGet, "/scim/v2/Groups/nope")
	send(1, oktaTok, http.MethodGet, "/scim/v2/Schemas")
	send(4, "okta-rotated-at-okta-only-0000", http.MethodGet, "/scim/v2/Users")
	send(1, oktaTok, strings.Repeat("Y", 1000), "/scim/v2/secret-in-path")

	got := scimSeries(t, reg)
	want := map[string]float64{
		`code="200",idp="entra",method="GET",resource="Users",token="1"`:  3,
		`code="200",idp="entra",method="GET",resource="Users",token="2"`:  2,
		`code="404",idp="entra",method="GET",resource="Groups",token="2"`: 1,
		`code="200",idp="okta",method="GET",resource="Schemas",token="1"`: 1,
		`code="401",idp="",method="GET",resource="Users",token=""`:        4,
		`code="404",idp="okta",method="other",resource="other",token="1"`: 1,
	}
	for series, n := range want {
		if got[series] != n {
			t.Errorf("scim_requests_total{%s} = %v, want %v", series, got[series], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
	// Without a registry there are no metrics: the handler is served as
	// it is.
	var none *metrics.Metrics
	if plain := none.SCIM(h, ""); plain != h {
		t.Errorf("without metrics, SCIM gave %T, not the handler", plain)
	}
}

// scimSeries is reg's scim_requests_total by its labels, written as
// Prometheus writes them.
func scimSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		if f.GetName() != "caddy_sso_scim_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			out[strings.Join(labels, ",")] = m.GetCounter().GetValue()
		}
	}
	return out
}
