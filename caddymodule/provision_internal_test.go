package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/provision"
)

// provisionedApp provisions the sso app of a JSON config the way Caddy
// does, without a running Caddy (Provision touches neither the store nor
// the network).
func provisionedApp(t *testing.T, idps string) (*App, error) {
	t.Helper()
	a := new(App)
	raw := `{"store":{"path":` + strings.ReplaceAll(`"`+filepath.Join(t.TempDir(), "sso.db")+`"`, `\`, `\\`) + `},"idps":` + idps + `}`
	if err := json.Unmarshal([]byte(raw), a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return a, a.Provision(ctx)
}

// oidcJSON is an OIDC IdP of a JSON config, its oidc object and itself
// completed by the extra fields given.
func oidcJSON(name, oidcExtra, idpExtra string) string {
	return fmt.Sprintf(`{"name":%q,"protocol":"oidc","oidc":{"issuer":"https://idp.example.com","client_id":"app"%s}%s}`, name, oidcExtra, idpExtra)
}

// The admin endpoint answers a request with no running sso app with 503
// "the sso app is not running" and the mark header: `caddy sso` tells a
// stopped gateway (right --address) from a wrong address by that header.
func TestAdminAnswersNotRunningWithItsMark(t *testing.T) {
	if caddy.ActiveContext().Context != nil {
		t.Skip("a Caddy config is running in this process")
	}
	rec := httptest.NewRecorder()
	err := new(adminAPI).serve(rec, httptest.NewRequest(http.MethodGet, adminapi.Prefix+"users", nil))
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusServiceUnavailable || apiErr.Message != "the sso app is not running" {
		t.Errorf("serve without an sso app = %#v, want a 503 \"the sso app is not running\"", err)
	}
	if rec.Header().Get(adminapi.MarkHeader) != "1" {
		t.Errorf("the answer lacks %s: %v", adminapi.MarkHeader, rec.Header())
	}
}

// An sso_scim handler in a JSON config without the sso app names the fix,
// not Caddy's "app module sso: not configured" (the Caddyfile refuses the
// same config at adapt).
func TestSCIMWithoutSSOAppNamesTheFix(t *testing.T) {
	s := &SCIMHandler{IdPs: []SCIMIdP{{Name: "entra", Token: "{env.SCIM_TOKEN}"}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := s.Provision(ctx)
	if err == nil || err.Error() != "sso_scim: the sso app is not configured: define idp entra in the global sso option" {
		t.Errorf("Provision = %v", err)
	}
}

// An error about a token names it by its placeholder only when the token
// is one placeholder and nothing else; a token of two placeholders may be
// partly a secret written in the config, so it is not repeated.
func TestSCIMTokenNamedOnlyWhenOnePlaceholder(t *testing.T) {
	for token, want := range map[string]string{
		"{env.SCIM_TOKEN}":            "{env.SCIM_TOKEN}",
		"{file./run/scim}":            "{file./run/scim}",
		"{env.A}{env.B}":              "(written in the config)",
		"prefix-{env.SCIM_TOKEN}":     "(written in the config)",
		"{env.SCIM_TOKEN}-suffix":     "(written in the config)",
		"{env.SCIM_TOKEN}-part}":      "(written in the config)",
		"{env.SCIM_TOKEN}}":           "(written in the config)",
		"a-literal-token-of-32-chars": "(written in the config)",
	} {
		if got := placeholderOnly(token); got != want {
			t.Errorf("placeholderOnly(%q) = %q, want %q", token, got, want)
		}
	}
}

// A route names each IdP once in its endpoints (`caddy sso check` lists
// the callback URLs to register by them), whatever the repeats in sso a a b.
func TestEndpointsNameEachIdPOnce(t *testing.T) {
	_, idps := (&Handler{IdP: "a", IdPs: []string{"a", "b", "a"}}).Endpoints(nil)
	if !slices.Equal(idps, []string{"a", "b"}) {
		t.Errorf("Endpoints = %v, want [a b]", idps)
	}
}

// A JSON route's default_idp must be one of its IdPs, and every IdP it
// names (default_idp too) must be defined in the sso app.
func TestRouteIdPsRefusals(t *testing.T) {
	h := &Handler{IdPs: []string{"a"}, DefaultIdP: "b"}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), `default_idp "b" is not one of this route's IdPs`) {
		t.Errorf("Validate of default_idp outside the route = %v", err)
	}
	a := &App{IdPs: []*IdPConfig{{Name: "a", Protocol: "oidc"}}}
	for _, h := range []*Handler{{IdP: "nope"}, {IdPs: []string{"a", "nope"}}, {IdPs: []string{"a"}, DefaultIdP: "nope"}} {
		if _, err := a.routeIdPs(h); err == nil || !strings.Contains(err.Error(), `no identity provider named "nope" in the global sso option (defined: a)`) {
			t.Errorf("routeIdPs(%+v) = %v", h, err)
		}
	}
}

// A JSON sp_cert needs both files: one left empty is refused at validate
// with the setting named (not as a file that cannot be read at start).
func TestSPCertNeedsBothFiles(t *testing.T) {
	for _, sc := range []SPCertConfig{{Key: "sp.key"}, {Cert: "sp.crt"}} {
		c := &SAMLConfig{Metadata: "<EntityDescriptor/>", SPCerts: []SPCertConfig{sc}}
		if err := c.check(false); err == nil || err.Error() != "sp_cert needs a certificate file and a key file" {
			t.Errorf("check(%+v) = %v", sc, err)
		}
	}
}

// update import (and force) reach the sign-in rules; an unknown mode is
// refused in a JSON config as in a Caddyfile.
func TestUpdateModeReachesTheRules(t *testing.T) {
	for mode, want := range map[string]provision.UpdateMode{"import": provision.UpdateImport, "force": provision.UpdateForce} {
		r, err := (&IdPConfig{Name: "a", Update: mode}).rules()
		if err != nil || r.Update != want {
			t.Errorf("rules() with update %s = %v, %v; want %v", mode, r.Update, err, want)
		}
	}
	c := &IdPConfig{Name: "a", Protocol: "oidc", Update: "sometimes", OIDC: &OIDCConfig{Issuer: "https://idp.example.com", ClientID: "app"}}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), `unknown update mode "sometimes"`) {
		t.Errorf("validate of update sometimes = %v", err)
	}
}

// Provision of JSON configs: what each IdP's settings become.
func TestProvisionedIdPSettings(t *testing.T) {
	t.Run("tenant_id unset", func(t *testing.T) {
		// An unset tenant_id placeholder would admit every tenant: the
		// config fails, naming it, even with the client secret resolved.
		t.Setenv("CADDY_SSO_TEST_SECRET", "a-secret")
		t.Setenv("CADDY_SSO_TEST_TENANT", "")
		_, err := provisionedApp(t, "["+oidcJSON("entra", `,"client_secret":"{env.CADDY_SSO_TEST_SECRET}","tenant_id":"{env.CADDY_SSO_TEST_TENANT}"`, "")+"]")
		if err == nil || !strings.Contains(err.Error(), "sso idp entra: tenant_id {env.CADDY_SSO_TEST_TENANT} is empty: is the variable set") {
			t.Errorf("Provision = %v", err)
		}
	})
	t.Run("tenant_id resolved to no tenant's ID", func(t *testing.T) {
		// A placeholder is held to tenant_id's rule once resolved (review
		// 33): a domain name, or another tenant than the issuer's, would
		// refuse every sign-in tenant_mismatch.
		const issuer = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
		for value, want := range map[string]string{
			"contoso.onmicrosoft.com":              `sso idp entra: oidc idp "entra": tenant_id: "contoso.onmicrosoft.com" is not a tenant ID`,
			"11111111-2222-4333-8444-555555555555": "tenant_id 11111111-2222-4333-8444-555555555555 is not the tenant of issuer",
			"72f988bf-86f1-41af-91ab-2d7cd011db47": "",
		} {
			t.Setenv("CADDY_SSO_TEST_TENANT", value)
			_, err := provisionedApp(t, `[{"name":"entra","protocol":"oidc","oidc":{"issuer":"`+issuer+`","client_id":"app","tenant_id":"{env.CADDY_SSO_TEST_TENANT}"}}]`)
			if (err == nil) != (want == "") || err != nil && !strings.Contains(err.Error(), want) {
				t.Errorf("tenant_id %s: Provision = %v, want %q", value, err, want)
			}
		}
	})
	t.Run("offline_access in scopes", func(t *testing.T) {
		// The scope asks for a refresh token as offline_access does: the
		// IdP keeps it (and Start warns when no route passes tokens).
		a, err := provisionedApp(t, "["+oidcJSON("o", `,"scopes":["openid","email","offline_access"]`, "")+","+oidcJSON("p", `,"scopes":["openid","email"]`, "")+"]")
		if err != nil {
			t.Fatal(err)
		}
		if !a.idps["o"].OfflineAccess || a.idps["p"].OfflineAccess {
			t.Errorf("OfflineAccess: with the scope %v, without %v", a.idps["o"].OfflineAccess, a.idps["p"].OfflineAccess)
		}
	})
	t.Run("sp_cert placeholders", func(t *testing.T) {
		// sp_cert's files, like the other SAML settings but metadata, may be
		// named by placeholders: Provision reads the files they resolve to.
		dir := t.TempDir()
		kp, err := saml.GenerateKeyPair("sp.test")
		if err != nil {
			t.Fatal(err)
		}
		pem, err := saml.EncodeKeyPairPEM(kp)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "sp.pem"), pem, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CADDY_SSO_TEST_SP_DIR", dir)
		const file = `{env.CADDY_SSO_TEST_SP_DIR}/sp.pem`
		if _, err := provisionedApp(t, `[{"name":"s","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md","sp_certs":[{"cert":"`+file+`","key":"`+file+`"}]}}]`); err != nil {
			t.Errorf("Provision: %v", err)
		}
	})
	t.Run("saml entity IDs unset", func(t *testing.T) {
		// An unset placeholder in entity_id or idp_entity_id fails the
		// config, naming it, rather than leaving the SP's default entity ID
		// (which the IdP's registration does not know) or no IdP pick in
		// metadata that describes several.
		t.Setenv("CADDY_SSO_TEST_UNSET_ENTITY", "")
		for _, setting := range []string{"entity_id", "idp_entity_id"} {
			_, err := provisionedApp(t, `[{"name":"s","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md","`+setting+`":"{env.CADDY_SSO_TEST_UNSET_ENTITY}"}}]`)
			if want := "sso idp s: " + setting + " {env.CADDY_SSO_TEST_UNSET_ENTITY} is empty"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s unset: Provision = %v, want an error saying %q", setting, err, want)
			}
		}
	})
	t.Run("scim managed", func(t *testing.T) {
		// Only an IdP marked scim is SCIM-managed (the account service then
		// keeps its users' deletions to SCIM).
		a, err := provisionedApp(t, "["+oidcJSON("s", "", `,"scim":true`)+","+oidcJSON("p", "", "")+"]")
		if err != nil {
			t.Fatal(err)
		}
		if !a.Accounts().SCIMManaged("s") || a.Accounts().SCIMManaged("p") || a.Accounts().SCIMManaged("nope") {
			t.Errorf("SCIMManaged: s %v, p %v, nope %v", a.Accounts().SCIMManaged("s"), a.Accounts().SCIMManaged("p"), a.Accounts().SCIMManaged("nope"))
		}
	})
}

// An sso handler that Caddy reaches only through handle_errors of a
// host-matched route, or through a subroute's error routes, is guarded by
// that route's host matcher too: its host-derived URLs are vouched for as
// those of the same handler in the server's routes are (docs/security.md,
// "Host-derived URLs"). One in a named route is guarded by none, whatever
// the route that invokes it matches, and names its named route (the log's
// advice): routeorder.Guards, the rule `caddy sso check` lists sites by.
func TestHostMatchersOfHandleErrors(t *testing.T) {
	target := new(Handler)
	host := caddyhttp.MatchHost{"app.example.com"}
	onHost := func(h caddyhttp.MiddlewareHandler) caddyhttp.RouteList {
		return caddyhttp.RouteList{{MatcherSets: caddyhttp.MatcherSets{{host}}, Handlers: []caddyhttp.MiddlewareHandler{h}}}
	}
	guarded := onHost(target)
	other := caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{new(Handler)}}}
	for _, tc := range []struct {
		name  string
		srv   *caddyhttp.Server
		hosts int
		named string
	}{
		{"routes", &caddyhttp.Server{Routes: guarded}, 1, ""},
		{"handle_errors", &caddyhttp.Server{Routes: other, Errors: &caddyhttp.HTTPErrorConfig{Routes: guarded}}, 1, ""},
		{"a subroute's error routes", &caddyhttp.Server{Routes: onHost(&caddyhttp.Subroute{Errors: &caddyhttp.HTTPErrorConfig{
			Routes: caddyhttp.RouteList{{Handlers: []caddyhttp.MiddlewareHandler{target}}}}})}, 1, ""},
		{"a named route", &caddyhttp.Server{Routes: onHost(&caddyhttp.Invoke{Name: "app"}),
			NamedRoutes: map[string]*caddyhttp.Route{"app": {Handlers: []caddyhttp.MiddlewareHandler{target}}}}, 0, "app"},
		{"nowhere", &caddyhttp.Server{Routes: other}, 0, ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://app.example.com/", nil)
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, tc.srv))
		hosts, named := routeHostMatchers(r, target)
		if len(hosts) != tc.hosts || tc.hosts > 0 && !slices.Equal(hosts[0], host) || named != tc.named {
			t.Errorf("%s: host matchers %v, named route %q; want %d of %v, named route %q", tc.name, hosts, named, tc.hosts, host, tc.named)
		}
	}
}
