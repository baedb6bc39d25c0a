package oidc_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestClientTextCapped: a callback's error and iss parameters are the
// client's text, and the refusal's error goes into a WARN line: 20,000
// bytes of either must not reach it whole.
func TestClientTextCapped(t *testing.T) {
	big := strings.Repeat("A", 20000)
	for _, tc := range []struct {
		name string
		set  func(q url.Values)
		want string
	}{
		{"error", func(q url.Values) { q.Del("code"); q.Set("error", big) }, oidc.CodeIdPError},
		{"iss", func(q url.Values) { q.Set("iss", big) }, oidc.CodeIssuerMismatch},
		{"many iss", func(q url.Values) { q["iss"] = []string{big, big} }, oidc.CodeIssuerMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.SetHooks(oidctest.Hooks{AuthResponse: tc.set})
			res := e.login(newBrowser())
			wantCode(t, res, tc.want)
			if len(res.Err) > 600 {
				t.Errorf("the refusal's error, which is logged, is %d bytes: %.120s…", len(res.Err), res.Err)
			}
		})
	}
}
