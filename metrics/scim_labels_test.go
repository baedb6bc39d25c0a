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

// TestSCIMMethodAndResourceLabels: every method and resource type a SCIM
// client uses is counted under its own name, so that a dashboard can tell
// an IdP's deprovisioning (DELETE) or its Bulk calls from the rest; only a
// method or path segment outside SCIM's fixed sets is "other". The base
// path is the configured one, with or without its trailing slash.
func TestSCIMMethodAndResourceLabels(t *testing.T) {
	db := backendtest.OpenBolt(t)
	accounts := &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil)}
	h, err := scim.Endpoint{BasePath: "/idm/scim/", IdPs: []scim.EndpointIdP{{Name: "okta", Token: oktaTok}}}.Handler(accounts, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, wantMethod, wantResource string }{
		{http.MethodDelete, "/idm/scim/Users/nobody", "DELETE", "Users"},
		{http.MethodPut, "/idm/scim/Groups/none", "PUT", "Groups"},
		{http.MethodPatch, "/idm/scim/Users/nobody", "PATCH", "Users"},
		{http.MethodPost, "/idm/scim/Bulk", "POST", "Bulk"},
		{http.MethodPost, "/idm/scim/.search", "POST", ".search"},
		{http.MethodGet, "/idm/scim/ServiceProviderConfig", "GET", "ServiceProviderConfig"},
		{http.MethodGet, "/idm/scim/ResourceTypes", "GET", "ResourceTypes"},
		{http.MethodHead, "/idm/scim/Users", "HEAD", "Users"},
		{http.MethodOptions, "/idm/scim/Users", "OPTIONS", "Users"},
		{"PROPFIND", "/idm/scim/Users", "other", "Users"},
		{http.MethodGet, "/idm/scim/alice@example.com", "GET", "other"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}"))
			r.Header.Set("Authorization", "Bearer "+oktaTok)
			metrics.New(reg).SCIM(h, "/idm/scim/").ServeHTTP(httptest.NewRecorder(), r)
			got := scimSeries(t, reg)
			if len(got) != 1 {
				t.Fatalf("series %v, want one", got)
			}
			for series := range got {
				for _, want := range []string{`method="` + tc.wantMethod + `"`, `resource="` + tc.wantResource + `"`, `idp="okta"`, `token="1"`} {
					if !strings.Contains(series, want) {
						t.Errorf("counted as {%s}, want %s", series, want)
					}
				}
			}
		})
	}
}

// TestSCIMPlainHandlerServedAsIs: a handler that does not report what it
// answered (not a scim.Handler) is served as it is, counted by nothing,
// rather than failing the config's start.
func TestSCIMPlainHandlerServedAsIs(t *testing.T) {
	reg := prometheus.NewRegistry()
	plain := http.NotFoundHandler()
	got := metrics.New(reg).SCIM(plain, "")
	w := httptest.NewRecorder()
	got.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/scim/v2/Users", nil))
	if w.Code != http.StatusNotFound || len(scimSeries(t, reg)) != 0 {
		t.Errorf("the plain handler answered %d and was counted %v; want its own 404, uncounted", w.Code, scimSeries(t, reg))
	}
}
