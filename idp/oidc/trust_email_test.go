package oidc_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestTrustEmail: with TrustEmail an absent email_verified (Entra sends
// none) counts as verified, so that link_by_email can link by the email
// claim; the IdP's own word still wins: a false one is refused, or
// unverified with AllowUnverifiedEmail, as without TrustEmail.
func TestTrustEmail(t *testing.T) {
	const absent = "absent"
	for _, tc := range []struct {
		name             string
		verified         any // absent: no email_verified claim
		trust, allow     bool
		wantCode         string
		wantVerification bool
	}{
		{"absent, no trust", absent, false, false, "", false},
		{"absent, trust", absent, true, false, "", true},
		{"null, trust", nil, true, false, "", true},
		{"true, trust", true, true, false, "", true},
		{"false, trust", false, true, false, oidc.CodeEmailUnverified, false},
		{"string false, trust", "false", true, false, oidc.CodeEmailUnverified, false},
		{"false, trust, allow_unverified_email", false, true, true, "", false},
		{"not a boolean, trust", "perhaps", true, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *oidc.Config) { c.TrustEmail, c.AllowUnverifiedEmail = tc.trust, tc.allow })
			set := func(c map[string]any) {
				delete(c, "email_verified")
				if tc.verified != absent {
					c["email_verified"] = tc.verified
				}
			}
			e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { set(tok.Claims) }, Userinfo: set})
			res := e.login(newBrowser())
			wantCode(t, res, tc.wantCode)
			if tc.wantCode == "" && res.Assertion.EmailVerified != tc.wantVerification {
				t.Errorf("EmailVerified %v, want %v", res.Assertion.EmailVerified, tc.wantVerification)
			}
		})
	}
}

// TestTrustEmailMultiTenant: TrustEmail is refused on a multi-tenant
// issuer, whose every tenant's administrator can give a user any address.
func TestTrustEmailMultiTenant(t *testing.T) {
	const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	for _, tc := range []struct {
		name    string
		cfg     oidc.Config
		refused bool
	}{
		{"tenants", oidc.Config{Issuer: "https://login.microsoftonline.com/organizations/v2.0", Tenants: []string{tid}}, true},
		{"any tenant", oidc.Config{Issuer: "https://login.microsoftonline.com/common/v2.0", Tenants: []string{oidc.AnyTenant}}, true},
		{"one tenant", oidc.Config{Issuer: "https://login.microsoftonline.com/" + tid + "/v2.0", TenantID: tid}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Name, tc.cfg.ClientID, tc.cfg.TrustEmail = "entra", "client", true
			err := tc.cfg.Check(nil)
			if tc.refused != (err != nil && strings.Contains(err.Error(), "trust_email")) {
				t.Fatalf("Check: %v, want refused %v (naming trust_email)", err, tc.refused)
			}
			tc.cfg.TrustEmail = false
			if err := tc.cfg.Check(nil); err != nil {
				t.Fatalf("without trust_email: %v", err)
			}
		})
	}
}
