package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrapeMetrics reads Caddy's Prometheus metrics from the admin endpoint.
func (g *gateway) scrapeMetrics() string {
	g.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", g.adminPort))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("metrics: %s: %s", resp.Status, b)
	}
	return string(b)
}

// TestMetrics: after sign-ins and SCIM calls, the counters moved with the
// right labels.
func TestMetrics(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_SCIM_TEST", scimTokenTest)
	w := newOIDCWorld(t, "\t\t\tjit\n\t\t\tscim\n\t\t\tallowed_domains example.com\n")
	w.idp.AddUser("eve", "eve-pw", map[string]any{
		"sub": "sub-eve", "given_name": "Eve", "family_name": "Outsider",
		"email": "eve@elsewhere.org", "email_verified": true,
	})
	w.sites = fmt.Sprintf(`%s {
	handle /scim/v2/* {
		sso_scim {
			idp test {env.CADDY_SSO_TEST_SCIM_TEST}
		}
	}
	handle {
		sso test
		reverse_proxy %s
	}
}
`, w.gw.base, w.upstream.hostPort())
	w.start()

	first := newBrowser(t)
	upstreamSaw(t, first.signIn(w.gw.base+"/", "ada", "ada-pw")) // create
	w.idp.AddUser("ada", "ada-pw", map[string]any{
		"sub": "sub-ada", "given_name": "Ada", "family_name": "King",
		"email": "ada@example.com", "email_verified": true, "groups": []string{"eng"},
	})
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")) // update
	// The update changed ada's groups, which drops her other cached
	// session; its next request reads it again, and it is held again.
	upstreamSaw(t, first.get(w.gw.base+"/"))
	if resp := newBrowser(t).signIn(w.gw.base+"/", "eve", "eve-pw"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("eve: %s", resp.Status)
	}
	// A callback with a forged state fails.
	if resp := newBrowser(t).get(w.gw.base + "/.sso/oidc/test/callback?code=x&state=y"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged callback: %s", resp.Status)
	} else {
		resp.Body.Close()
	}
	c := newSCIMClient(t, w.gw.base, scimTokenTest)
	c.must(200, "GET", "/Users", "")
	c.must(201, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"externalId":"sub-bob",
		"userName":"bob@example.com","active":true,"name":{"givenName":"Bob","familyName":"B"},
		"emails":[{"primary":true,"type":"work","value":"bob@example.com"}]}`)

	m := w.gw.scrapeMetrics()
	for _, want := range []string{
		`caddy_sso_logins_total{idp="test",protocol="oidc",reason="",result="success"} 2`,
		`caddy_sso_logins_total{idp="test",protocol="oidc",reason="domain_not_allowed",result="denied"} 1`,
		`caddy_sso_logins_total{idp="test",protocol="oidc",reason="flow_missing",result="failed"} 1`,
		`caddy_sso_jit_total{action="create",idp="test",reason=""} 1`,
		`caddy_sso_jit_total{action="update",idp="test",reason=""} 1`,
		`caddy_sso_jit_total{action="deny",idp="test",reason="domain_not_allowed"} 1`,
		`caddy_sso_scim_requests_total{code="200",idp="test",method="GET",resource="Users",token="1"} 1`,
		`caddy_sso_scim_requests_total{code="201",idp="test",method="POST",resource="Users",token="1"} 1`,
		`caddy_sso_active_sessions 2`,
		`caddy_sso_endpoint_duration_seconds_count{endpoint="callback"} 4`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The OpenID Connect IdP's discovery document and keys, fetched by
	// these sign-ins, have their fetch times (values: metrics' own test).
	for _, name := range []string{"oidc_discovery_loaded_timestamp_seconds", "oidc_jwks_loaded_timestamp_seconds"} {
		if !strings.Contains(m, "\ncaddy_sso_"+name+`{idp="test"} `) {
			t.Errorf("metrics lack caddy_sso_%s{idp=\"test\"}", name)
		}
	}
	if t.Failed() {
		var ours []string
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, "caddy_sso") {
				ours = append(ours, line)
			}
		}
		t.Logf("caddy_sso metrics:\n%s", strings.Join(ours, "\n"))
	}
	for _, secret := range []string{scimTokenTest, "ada@example.com", "sub-ada"} {
		if strings.Contains(m, secret) {
			t.Errorf("metrics contain %q", secret)
		}
	}

	// A reload gives the new config a registry of its own (Caddy's, as
	// for its caddy_http_* counters): the counters start again from
	// zero, and the gauge reads the new config's session cache.
	w.gw.reload(strings.Replace(w.caddyfile(), "sso test\n", "sso test {\n\t\theaders default\n\t}\n", 1)) // a changed config: Caddy skips an unchanged one
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	m = w.gw.scrapeMetrics()
	for _, want := range []string{
		`caddy_sso_logins_total{idp="test",protocol="oidc",reason="",result="success"} 1`,
		`caddy_sso_active_sessions 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("after a reload, metrics lack %s:\n%s", want, m)
		}
	}
}

// TestSAMLMetadataMetrics: a SAML IdP's metadata health is in the metrics,
// as Unix times an alert can compare with time(): when the copy in use was
// loaded, when it expires, when its signing certificate does.
func TestSAMLMetadataMetrics(t *testing.T) {
	w := newSAMLWorld(t, "\t\t\tjit\n")
	w.idp.SetMetadataValidity(48 * time.Hour)
	w.gw.start(w.caddyfile())
	// The metadata loads at Start, in the background of the first request.
	resp := newBrowser(t).get(w.gw.base+"/", "Accept", "application/json")
	readBody(t, resp)
	var m string
	got := func(name string) (time.Time, bool) {
		re := regexp.MustCompile(`(?m)^caddy_sso_` + name + `\{idp="test"\} (\S+)$`)
		match := re.FindStringSubmatch(m)
		if match == nil {
			return time.Time{}, false
		}
		f, err := strconv.ParseFloat(match[1], 64)
		return time.Unix(int64(f), 0), err == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = w.gw.scrapeMetrics()
		if _, ok := got("saml_metadata_loaded_timestamp_seconds"); ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	now := time.Now()
	for name, want := range map[string][2]time.Time{
		"saml_metadata_loaded_timestamp_seconds":        {now.Add(-time.Minute), now.Add(time.Second)},
		"saml_metadata_valid_until_timestamp_seconds":   {now.Add(47 * time.Hour), now.Add(49 * time.Hour)},
		"saml_idp_certificate_expiry_timestamp_seconds": {now, now.Add(100 * 365 * 24 * time.Hour)},
	} {
		if at, ok := got(name); !ok || at.Before(want[0]) || at.After(want[1]) {
			t.Errorf("caddy_sso_%s{idp=\"test\"} = %v (present %v), want between %v and %v", name, at, ok, want[0], want[1])
		}
	}
}
