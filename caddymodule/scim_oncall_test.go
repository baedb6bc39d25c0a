package caddymodule_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// scimCall sends one SCIM request to site with token and userAgent, and
// returns its status.
func scimCall(t *testing.T, site, token, userAgent, path string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, site+"/scim/v2"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", userAgent)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// TestSCIMOnCallWhichClient: one sso_scim site serves entra, being rotated
// (listed twice), and okta, whose token was changed at Okta only. The
// operator can tell from Caddy's metrics which IdP's client succeeds and
// with which of its tokens (token="1" for the first line, "2" for the
// second: the old line can go once token="1" stops moving), that okta's
// succeeds no more (idp="" counts the refused), and from the 401 line
// whose client it is: its User-Agent.
func TestSCIMOnCallWhichClient(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_SCIM_ENTRA_NEXT", "entra-next-token-00112233445566")
	g := startSCIMSite(t, "idp entra {env.CADDY_SSO_TEST_SCIM_ENTRA_NEXT}")
	const entraUA, oktaUA = "Microsoft.Identity.Provisioning", "Okta SCIM Client 1.0.0"
	for range 3 {
		if s := scimCall(t, g.base, scimTokenEntra, entraUA, "/Users"); s != http.StatusOK {
			t.Fatalf("entra, old token: %d", s)
		}
		if s := scimCall(t, g.base, "okta-token-rotated-at-okta-only-000", oktaUA, "/Users"); s != http.StatusUnauthorized {
			t.Fatalf("okta, a token Caddy lacks: %d", s)
		}
	}
	if s := scimCall(t, g.base, "entra-next-token-00112233445566", entraUA, "/Groups"); s != http.StatusOK {
		t.Fatalf("entra, new token: %d", s)
	}

	m := g.scrapeMetrics()
	for _, want := range []string{
		`caddy_sso_scim_requests_total{code="200",idp="entra",method="GET",resource="Users",token="1"} 3`,
		`caddy_sso_scim_requests_total{code="200",idp="entra",method="GET",resource="Groups",token="2"} 1`,
		`caddy_sso_scim_requests_total{code="401",idp="",method="GET",resource="Users",token=""} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, "caddy_sso_scim") {
				t.Log(line)
			}
		}
	}
	refused := 0
	for _, line := range strings.Split(g.logs(), "\n") {
		if strings.Contains(line, "missing or wrong bearer token") {
			refused++
			if !strings.Contains(line, `"user_agent":"`+oktaUA+`"`) {
				t.Errorf("the 401 line does not say whose client it is (user_agent %q): %s", oktaUA, line)
			}
		}
	}
	if refused == 0 {
		t.Error("no line for the refused requests")
	}
}
