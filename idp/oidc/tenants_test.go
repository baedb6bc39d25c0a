package oidc_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// Tenants of the multi-tenant tests: A and B admitted, C not.
const (
	tenantA   = "aaaaaaaa-1111-4111-8111-111111111111"
	tenantB   = "bbbbbbbb-2222-4222-8222-222222222222"
	tenantC   = "cccccccc-3333-4333-8333-333333333333"
	sharedOID = "00000000-0000-0000-0000-0000000000f1"
)

// newMultiTenantEnv is an env whose IdP behaves as Entra ID's
// organizations endpoint: the issuer is <origin>/organizations/v2.0, its
// discovery names the template <origin>/{tenantid}/v2.0, and each token
// names its user's tenant. alice is in tenant A, bob in tenant B with the
// same oid and sub as alice, carol in tenant C. The relying party admits
// tenants, and keys users as the entra preset does.
func newMultiTenantEnv(t *testing.T, tenants []string, opts ...func(*oidc.Config)) *env {
	t.Helper()
	srv, err := oidctest.StartEntraMultiTenant("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	m, err := mapping.New(mapping.PresetEntra, idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, srv, append([]func(*oidc.Config){func(c *oidc.Config) {
		c.Tenants, c.TenantKeyClaims = tenants, m.Expected(mapping.UniqueUserID)
	}}, opts...)...)
	for user, tid := range map[string]string{"alice": tenantA, "bob": tenantB, "carol": tenantC} {
		claims := aliceClaims()
		claims["tid"], claims["oid"] = tid, sharedOID
		claims["email"] = user + "@example.com"
		srv.AddUser(user, password, claims)
	}
	return e
}

// tenantIssuer is the issuer of tid's tokens at e's IdP.
func (e *env) tenantIssuer(tid string) string {
	return strings.TrimSuffix(e.idp.Issuer, "/organizations/v2.0") + "/" + tid + "/v2.0"
}

// signInAs runs a whole login of user in a new browser.
func (e *env) signInAs(user string) result {
	e.t.Helper()
	b := newBrowser()
	return e.mustCallback(b, e.authorize(b, e.begin(b, "/"), user))
}

// TestMultiTenantSignIn: through Entra's organizations endpoint, users of
// two admitted tenants with the same oid (and sub) are two users: the
// assertion's oid and subject are namespaced by the tenant, so the entra
// preset keys them apart; and no email is ever vouched for, whatever
// email_verified says: another tenant's administrator can give anyone any
// address.
func TestMultiTenantSignIn(t *testing.T) {
	e := newMultiTenantEnv(t, []string{tenantA, strings.ToUpper(tenantB)})
	m, _ := mapping.New(mapping.PresetEntra, idp.ProtocolOIDC, nil)
	keys := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		res := e.signInAs(user)
		wantCode(t, res, "")
		a := res.Assertion
		prof, err := m.Map(a)
		if err != nil {
			t.Fatal(err)
		}
		tid := map[string]string{"alice": tenantA, "bob": tenantB}[user]
		if want := tid + "/" + sharedOID; prof.UniqueUserID != want {
			t.Errorf("%s: uniqueUserId %q, want %q", user, prof.UniqueUserID, want)
		}
		if want := tid + "/alice-sub"; a.Subject != want || a.Logout.Subject != want {
			t.Errorf("%s: subject %q, logout subject %q, want %q", user, a.Subject, a.Logout.Subject, want)
		}
		if a.EmailVerified {
			t.Errorf("%s: email vouched for by a multi-tenant IdP", user)
		}
		if got := a.First("email"); got != user+"@example.com" {
			t.Errorf("%s: email %q", user, got)
		}
		keys[user] = prof.UniqueUserID
	}
	if keys["alice"] == keys["bob"] {
		t.Fatalf("two tenants' users share the key %q", keys["alice"])
	}
}

// TestMultiTenantRefusals: a tenant not admitted gets its own code, whose
// error names the tenant but not the allow-list; a token whose iss names
// another tenant than its tid, or that has no tid, is refused; so is an
// RFC 9207 iss of a tenant not admitted, or of another tenant than the ID
// token's.
func TestMultiTenantRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		user  string
		hooks func(e *env) oidctest.Hooks
		want  string
	}{
		{"tenant not admitted", "carol", nil, oidc.CodeTenantNotAllowed},
		{"iss of another tenant than tid", "alice", func(e *env) oidctest.Hooks {
			return oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Claims["iss"] = e.tenantIssuer(tenantB) }}
		}, oidc.CodeIDTokenIssuer},
		{"tid of another tenant than iss", "alice", func(e *env) oidctest.Hooks {
			return oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Claims["tid"] = tenantB }}
		}, oidc.CodeIDTokenIssuer},
		{"no tid", "alice", func(e *env) oidctest.Hooks {
			return oidctest.Hooks{IDToken: func(tok *oidctest.Token) { delete(tok.Claims, "tid") }}
		}, oidc.CodeIDTokenIssuer},
		{"the template itself as iss", "alice", func(e *env) oidctest.Hooks {
			return oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Claims["iss"] = e.tenantIssuer(oidctest.TenantPlaceholder) }}
		}, oidc.CodeIDTokenIssuer},
		{"authorization response iss of a tenant not admitted", "alice", func(e *env) oidctest.Hooks {
			return oidctest.Hooks{AuthResponse: func(q url.Values) { q.Set("iss", e.tenantIssuer(tenantC)) }}
		}, oidc.CodeTenantNotAllowed},
		{"authorization response iss of another tenant", "alice", func(e *env) oidctest.Hooks {
			return oidctest.Hooks{AuthResponse: func(q url.Values) { q.Set("iss", e.tenantIssuer(tenantB)) }}
		}, oidc.CodeIssuerMismatch},
		{"authorization response iss of no tenant", "alice", func(e *env) oidctest.Hooks {
			return oidctest.Hooks{AuthResponse: func(q url.Values) { q.Set("iss", e.idp.Issuer) }}
		}, oidc.CodeIssuerMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMultiTenantEnv(t, []string{tenantA, tenantB})
			if tc.hooks != nil {
				e.idp.SetHooks(tc.hooks(e))
			}
			res := e.signInAs(tc.user)
			wantCode(t, res, tc.want)
			if strings.Contains(res.Err, tenantA) && tc.user != "alice" || strings.Contains(res.Err, tenantB) && tc.want == oidc.CodeTenantNotAllowed {
				t.Errorf("the refusal names the allow-list: %s", res.Err)
			}
		})
	}
	// The same tokens pass without the hooks, and the authorization
	// response's iss (oidctest sends the user's tenant's) is checked.
	e := newMultiTenantEnv(t, []string{tenantA, tenantB})
	wantCode(t, e.signInAs("alice"), "")
}

// TestMultiTenantAny: tenants any admits a tenant nobody listed.
func TestMultiTenantAny(t *testing.T) {
	e := newMultiTenantEnv(t, []string{oidc.AnyTenant})
	res := e.signInAs("carol")
	wantCode(t, res, "")
	if res.Assertion.Subject != tenantC+"/alice-sub" {
		t.Errorf("subject %q", res.Assertion.Subject)
	}
}

// TestMultiTenantRefresh: a refreshed ID token of the session's tenant is
// taken; one of another (admitted) tenant, consistent in itself, ends the
// session, as does one whose tenant is no longer admitted.
func TestMultiTenantRefresh(t *testing.T) {
	e := newMultiTenantEnv(t, []string{tenantA, tenantB}, func(c *oidc.Config) { c.OfflineAccess = true })
	res := e.signInAs("alice")
	wantCode(t, res, "")
	tok := &idp.Tokens{IDToken: res.Tokens.ID, AccessToken: res.Tokens.Access, RefreshToken: res.Tokens.Refresh}
	got, err := e.p.Refresh(context.Background(), tok)
	if err != nil || got.IDToken == tok.IDToken {
		t.Fatalf("refresh in the same tenant: %v", err)
	}
	e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
		tok.Claims["tid"], tok.Claims["iss"] = tenantB, e.tenantIssuer(tenantB)
	}})
	if _, err := e.p.Refresh(context.Background(), got); !errors.Is(err, idp.ErrGrantRevoked) || !strings.Contains(err.Error(), "tid differs") {
		t.Fatalf("refresh naming tenant B = %v, want the grant ended (tid differs)", err)
	}

	// Alice's tenant dropped from the list (a reload): her next refresh
	// ends the session.
	e2 := newMultiTenantEnv(t, []string{tenantA}, func(c *oidc.Config) { c.OfflineAccess = true })
	res = e2.signInAs("alice")
	wantCode(t, res, "")
	cfg := e2.cfg
	cfg.Tenants = []string{tenantB}
	p, err := oidc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok = &idp.Tokens{IDToken: res.Tokens.ID, AccessToken: res.Tokens.Access, RefreshToken: res.Tokens.Refresh}
	if _, err := p.Refresh(context.Background(), tok); !errors.Is(err, idp.ErrGrantRevoked) {
		t.Fatalf("refresh of a tenant no longer admitted = %v, want the grant ended", err)
	}
}

// TestMultiTenantBackChannelLogout: a logout token of an admitted tenant
// names its sessions by "<tid>/<sub>", as sign-in recorded them; one of a
// tenant not admitted, or whose iss is another tenant's, ends nothing.
func TestMultiTenantBackChannelLogout(t *testing.T) {
	e := newMultiTenantEnv(t, []string{tenantA, tenantB})
	status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-1"))}})
	if status != http.StatusOK {
		t.Fatalf("alice's logout token: %d %s", status, code)
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test|" + tenantA + "/alice-sub|sid-1"}) {
		t.Errorf("ended %v", got)
	}
	carol := e.idp.NewLogoutToken(clientID, "carol", "sid-2")
	carol.Claims["tid"] = tenantC
	wrongIss := e.idp.NewLogoutToken(clientID, "alice", "sid-3")
	wrongIss.Claims["tid"] = tenantB
	for name, tok := range map[string]*oidctest.Token{"tenant not admitted": carol, "iss of another tenant": wrongIss} {
		if status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(tok)}}); status != http.StatusBadRequest || code != oidc.CodeLogoutTokenIssuer {
			t.Errorf("%s: %d %s, want 400 %s", name, status, code, oidc.CodeLogoutTokenIssuer)
		}
	}
	if n := len(e.ended.list()); n != 1 {
		t.Errorf("refused logout tokens ended sessions: %v", e.ended.list())
	}
}

// TestMultiTenantFrontChannelLogout: through a multi-tenant issuer the
// front-channel iss, when given, must be the issuer of a tenant admitted;
// the sid then names the session. An iss of another tenant, or one that
// fills the template with no tenant ID, is refused and ends nothing.
func TestMultiTenantFrontChannelLogout(t *testing.T) {
	e := newMultiTenantEnv(t, []string{tenantA, tenantB})
	call := func(query url.Values) error {
		w := httptest.NewRecorder()
		return e.p.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, e.rp.URL+"/frontchannel-logout?"+query.Encode(), nil), e.rp.URL+"/", oidc.FrontChannelLogoutEndpoint)
	}
	if err := call(url.Values{"iss": {e.tenantIssuer(tenantA)}, "sid": {"sid-1"}}); err != nil {
		t.Fatalf("iss of an admitted tenant: %v", err)
	}
	for name, iss := range map[string]string{
		"tenant not admitted": e.tenantIssuer(tenantC),
		"not a tenant ID":     e.tenantIssuer("organizations"),
		"the template":        e.tenantIssuer("{tenantid}"),
	} {
		if err := call(url.Values{"iss": {iss}, "sid": {"sid-2"}}); codeOf(err) != oidc.CodeFrontChannelIssuer {
			t.Errorf("%s: %v, want %s", name, err, oidc.CodeFrontChannelIssuer)
		}
	}
	if got := e.ended.list(); !slices.Equal(got, []string{"test||sid-1"}) {
		t.Errorf("ended %v, want sid-1 alone", got)
	}
}

// TestMultiTenantConfig: tenants is required with Entra's organizations
// and common issuers and refused with any other; its values are tenant
// IDs, or "any" alone; tenant_id excludes it.
func TestMultiTenantConfig(t *testing.T) {
	base := oidc.Config{Name: "entra", ClientID: "app"}
	for _, tc := range []struct {
		name, issuer string
		tenants      []string
		tenantID     string
		want         string // "" accepted
	}{
		{"organizations", "https://login.microsoftonline.com/organizations/v2.0", []string{tenantA, tenantB}, "", ""},
		{"common, any", "https://login.microsoftonline.com/common/v2.0", []string{"any"}, "", ""},
		{"organizations without tenants", "https://login.microsoftonline.com/organizations/v2.0", nil, "", "it needs tenants"},
		{"common without tenants", "https://login.microsoftonline.com/common/v2.0", nil, "", "it needs tenants"},
		{"tenants on a tenant's issuer", "https://login.microsoftonline.com/" + tenantA + "/v2.0", []string{tenantA}, "", "tenants is only for Microsoft Entra ID's multi-tenant issuers"},
		{"tenants on another IdP", "https://accounts.example.com", []string{tenantA}, "", "tenants is only for"},
		{"consumers is one tenant", "https://login.microsoftonline.com/consumers/v2.0", []string{tenantA}, "", "tenants is only for"},
		{"not a GUID", "https://login.microsoftonline.com/organizations/v2.0", []string{"contoso.onmicrosoft.com"}, "", "is not a tenant ID"},
		{"any among others", "https://login.microsoftonline.com/organizations/v2.0", []string{tenantA, "any"}, "", `"any" admits every tenant and stands alone`},
		{"with tenant_id", "https://login.microsoftonline.com/organizations/v2.0", []string{tenantA}, tenantA, "tenants and tenant_id exclude each other"},
		// tenant_id is compared with tid, always the tenant's GUID, which
		// a tenant-specific issuer names (review 33).
		{"tenant_id the issuer's", "https://login.microsoftonline.com/" + tenantA + "/v2.0", nil, strings.ToUpper(tenantA), ""},
		{"tenant_id with another IdP", "https://idp.example.com", nil, tenantA, ""},
		// Only Entra's tenant-specific issuer form (…/<GUID>/v2.0) names the tenant tokens carry.
		{"tenant_id with another IdP whose issuer path is a GUID", "https://idp.example.com/" + tenantB, nil, tenantA, ""},
		{"tenant_id a domain name", "https://login.microsoftonline.com/" + tenantA + "/v2.0", nil, "contoso.onmicrosoft.com", `tenant_id: "contoso.onmicrosoft.com" is not a tenant ID (a GUID`},
		{"tenant_id another tenant than the issuer's", "https://login.microsoftonline.com/" + tenantA + "/v2.0", nil, tenantB, "tenant_id " + tenantB + " is not the tenant of issuer"},
		{"tenant_id another tenant than a national cloud issuer's", "https://login.microsoftonline.us/" + tenantA + "/v2.0", nil, tenantB, "is not the tenant of issuer"},
		{"tenant_id another tenant than a v1 issuer's", "https://sts.windows.net/" + tenantA + "/", nil, tenantB, "tenant_id " + tenantB + " is not the tenant of issuer"},
		{"tenant_id a v1 issuer's", "https://sts.windows.net/" + tenantA + "/", nil, tenantA, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Issuer, c.Tenants, c.TenantID = tc.issuer, tc.tenants, tc.tenantID
			_, err := oidc.New(c)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("New = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestMultiTenantDiscovery: the organizations endpoint's template is
// accepted at sign-in and by `caddy sso check` (Probe); a document that
// names another template (another origin's) is not.
func TestMultiTenantDiscovery(t *testing.T) {
	e := newMultiTenantEnv(t, []string{tenantA})
	if err := e.p.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := oidc.Probe(context.Background(), nil, e.idp.Issuer)
	if err != nil || res.IssuerErr != nil {
		t.Fatalf("Probe = %v, issuer %v", err, res.IssuerErr)
	}
	e.idp.SetIssuerTemplate("https://login.microsoftonline.com/{tenantid}/v2.0")
	res, err = oidc.Probe(context.Background(), nil, e.idp.Issuer)
	if err != nil || res.IssuerErr == nil || !strings.Contains(res.IssuerErr.Error(), "want the multi-tenant issuer template") {
		t.Fatalf("Probe of another origin's template = %v, issuer %v", err, res.IssuerErr)
	}
	e2 := newMultiTenantEnv(t, []string{tenantA})
	e2.idp.SetIssuerTemplate("")
	if err := e2.p.Discover(context.Background()); codeOf(err) != idp.CodeMisconfigured {
		t.Fatalf("a document naming the organizations issuer itself: %v", err)
	}
}
