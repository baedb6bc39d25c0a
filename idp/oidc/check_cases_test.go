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
