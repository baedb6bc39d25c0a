package oidc_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestUserinfoEmailVerifiedSpeaksOfItsOwnEmail: the ID token carries no
// email_verified and lacks a profile claim, so userinfo is read and its
// email_verified merged. That claim vouches for userinfo's email: it counts
// only when that is the email kept (the ID token has none, or the same
// address, trimmed, ASCII case aside). Another address's email_verified is
// taken as absent, true or false: true would make the ID token's email
// verified (link_by_email), false would refuse an email nobody said was
// unverified. An address equal only under Unicode case folding is another
// one here ("ſ" folds to "s", a different mailbox for the JIT rules).
func TestUserinfoEmailVerifiedSpeaksOfItsOwnEmail(t *testing.T) {
	for _, tc := range []struct {
		name         string
		idEmail      string // "": the ID token has no email
		uiEmail      string
		uiVerified   any
		wantEmail    string
		wantCode     string
		wantVerified bool
	}{
		{"another address, true", "ceo@corp.example", "mallory@corp.example", true, "ceo@corp.example", "", false},
		{"another address, false", "ceo@corp.example", "mallory@corp.example", false, "ceo@corp.example", "", false},
		{"the same address, true", "ceo@corp.example", "ceo@corp.example", true, "ceo@corp.example", "", true},
		{"the same address in other case and spaces, true", "CEO@Corp.example", " ceo@corp.EXAMPLE ", "true", "CEO@Corp.example", "", true},
		{"the same address, false", "ceo@corp.example", "ceo@corp.example", false, "", oidc.CodeEmailUnverified, false},
		{"equal only under Unicode folding, true", "sam@corp.example", "ſam@corp.example", true, "sam@corp.example", "", false},
		{"no email in the ID token, true", "", "ceo@corp.example", true, "ceo@corp.example", "", true},
		{"no email in the ID token, false", "", "ceo@corp.example", false, "", oidc.CodeEmailUnverified, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.SetHooks(oidctest.Hooks{
				IDToken: func(tok *oidctest.Token) {
					delete(tok.Claims, "email")
					if tc.idEmail != "" {
						tok.Claims["email"] = tc.idEmail
					}
					delete(tok.Claims, "email_verified")
					delete(tok.Claims, "given_name") // userinfo is read
				},
				Userinfo: func(c map[string]any) {
					c["email"] = tc.uiEmail
					c["email_verified"] = tc.uiVerified
				},
			})
			res := e.login(newBrowser())
			wantCode(t, res, tc.wantCode)
			if tc.wantCode != "" {
				return
			}
			if got := res.Assertion.Attributes["email"]; len(got) != 1 || got[0] != tc.wantEmail {
				t.Fatalf("email = %q, want %q", got, tc.wantEmail)
			}
			if res.Assertion.EmailVerified != tc.wantVerified {
				t.Errorf("EmailVerified = %v, want %v", res.Assertion.EmailVerified, tc.wantVerified)
			}
			if _, present := res.Assertion.Attributes["email_verified"]; present != tc.wantVerified {
				t.Errorf("email_verified attribute present = %v, want %v (taken only with its email)", present, tc.wantVerified)
			}
		})
	}
}
