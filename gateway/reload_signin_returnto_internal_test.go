package gateway

import (
	"net/http"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
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
// recognises are the protocols' own: OIDC's redirect URI by GET, SAML's
// ACS by POST.
func TestCallbackMethodIsTheProtocols(t *testing.T) {
	for _, tc := range []struct{ protocol, endpoint, method string }{
		{idp.ProtocolOIDC, "callback", http.MethodGet},
		{idp.ProtocolSAML, "acs", http.MethodPost},
	} {
		if got := callbackMethod(tc.protocol, tc.endpoint); got != tc.method {
			t.Errorf("callbackMethod(%q, %q) = %q, want %q", tc.protocol, tc.endpoint, got, tc.method)
		}
	}
	if got := callbackMethod("oidc", "backchannel-logout"); got != "" {
		t.Errorf("another endpoint: %q", got)
	}
	if got := callbackMethod("saml", "callback"); got != "" {
		t.Errorf("another protocol's callback: %q", got)
	}
}
