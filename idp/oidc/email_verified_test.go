package oidc_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestEmailVerifiedFalseWithoutEmail: email_verified false is refused
// (email_unverified) only when there is an email claim for it to speak of.
// Keycloak sends email_verified false for a user with no address at all:
// that sign-in goes on, unverified, and the mapping and `optional email`
// decide about the missing email. An email claim in any JSON shape is one.
func TestEmailVerifiedFalseWithoutEmail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		email any // nil: no email claim at all
		want  string
	}{
		{"no email claim", nil, ""},
		{"an empty email", "", ""},
		{"a blank email", " \t", ""},
		{"an email", "mallory@corp.example", oidc.CodeEmailUnverified},
		{"an email in an array", []string{"mallory@corp.example"}, oidc.CodeEmailUnverified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			set := func(c map[string]any) {
				delete(c, "email")
				if tc.email != nil {
					c["email"] = tc.email
				}
				c["email_verified"] = false
			}
			e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { set(tok.Claims) }, Userinfo: set})
			res := e.login(newBrowser())
			wantCode(t, res, tc.want)
			if tc.want == "" && res.Assertion.EmailVerified {
				t.Error("EmailVerified with email_verified false")
			}
		})
	}
}
