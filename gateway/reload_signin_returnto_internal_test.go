package gateway

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// TestReturnPathDropsIdPAnswers: a sign-in never returns to a gateway
// callback that carries an IdP's answer, under any path prefix (a sign-in
// begun before path_prefix changed comes back to its old callback), and
// still returns to an app's own page with a state parameter, or a path
// that only looks like a callback.
func TestReturnPathDropsIdPAnswers(t *testing.T) {
	rt := &Route{PathPrefix: "/app/.sso/"}
	for _, tc := range []struct{ uri, want string }{
		{"/.sso/oidc/test/callback?code=c0de&state=s7a7e", "/app/"},
		{"/old/sso/oidc/okta/callback?state=s&code=c&iss=https%3A%2F%2Fidp", "/app/"},
		{"/oidc/x/callback?error=access_denied&state=s", "/app/"},
		{"/.sso/saml/test/acs", "/app/"},
		{"/.sso/saml/test/acs?x=1", "/app/"},
		// An app's own pages keep their state parameter.
		{"/stores?state=CA&code=94", "/stores?state=CA&code=94"},
		{"/oauth/callback?code=c&state=s", "/oauth/callback?code=c&state=s"},
		{"/x/oidc/test/callback", "/x/oidc/test/callback"},
		{"/x/oidc/test/callback?state=CA", "/x/oidc/test/callback?state=CA"},
		{"/x/oidc/test/callback?code=94", "/x/oidc/test/callback?code=94"},
		{"/x/oidc//callback?code=c&state=s", "/x/oidc//callback?code=c&state=s"},
		{"/x/saml/test/acs/more", "/x/saml/test/acs/more"},
		{"/x/saml/test/callback?code=c&state=s", "/x/saml/test/callback?code=c&state=s"},
		{"/page?x=1", "/page?x=1"},
		{"https://evil.example/", "/"},
	} {
		if got := rt.returnPath(tc.uri); got != tc.want {
			t.Errorf("returnPath(%q) = %q, want %q", tc.uri, got, tc.want)
		}
	}
}

// TestCallbackMethodIsTheProtocols: the callback endpoints the gateway
// recognises without a provider are the protocols' own.
func TestCallbackMethodIsTheProtocols(t *testing.T) {
	var op *oidc.Provider
	var sp *saml.Provider
	for protocol, p := range map[string]interface{ CallbackEndpoint() (string, string) }{"oidc": op, "saml": sp} {
		name, method := p.CallbackEndpoint()
		if got := callbackMethod(protocol, name); got != method {
			t.Errorf("callbackMethod(%q, %q) = %q, want %q", protocol, name, got, method)
		}
	}
	if got := callbackMethod("oidc", "backchannel-logout"); got != "" {
		t.Errorf("another endpoint: %q", got)
	}
	if got := callbackMethod("saml", "callback"); got != "" {
		t.Errorf("another protocol's callback: %q", got)
	}
}
