package oidc_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
)

// checkCase edits a configuration that passes Check; want is in the error
// Check then returns, "": none.
type checkCase struct {
	name string
	edit func(*oidc.Config)
	want string
}

// TestCheckRefusesWhatFailsEverySignIn: settings that loaded and then
// failed every sign-in. token_auth without a secret was dropped (a public
// client, refused invalid_client at the token endpoint); a scope written
// as a placeholder was sent as written.
func TestCheckRefusesWhatFailsEverySignIn(t *testing.T) {
	testCheck(t, []checkCase{
		{"token_auth without client_secret", func(c *oidc.Config) { c.TokenAuth = "client_secret_post" }, "token_auth client_secret_post sends the client secret: add client_secret"},
		{"token_auth with client_secret", func(c *oidc.Config) { c.TokenAuth, c.ClientSecret = "client_secret_post", "s" }, ""},
		{"scope placeholder", func(c *oidc.Config) { c.Scopes = []string{"openid", "{env.EXTRA_SCOPE}"} }, `scopes "{env.EXTRA_SCOPE}": values are literal`},
	})
}

// testCheck runs each case's edit on a minimal valid configuration and
// holds Check to its want.
func testCheck(t *testing.T, cases []checkCase) {
	t.Helper()
	base := oidc.Config{Name: "x", Issuer: "https://idp.example", ClientID: "c"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			err := c.Check(nil)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}
