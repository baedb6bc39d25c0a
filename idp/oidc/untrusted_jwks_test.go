package oidc_test

import (
	"net/http"
	"net/url"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestUntrustedCertificateKeysAndLogout: an IdP whose discovery document
// or jwks_uri is served over a TLS certificate this host does not trust
// fails what needs it as idp_misconfigured, with the fix and the URL, as
// sign-in says for discovery and the token endpoint
// (TestUntrustedCertificateIsMisconfigured), not idp_unavailable: the
// callback's ID token, and a back-channel logout token. The IdP is
// answered 500 for the logout token, not 400: the token was not checked,
// and the IdP may send it again once an administrator has acted.
func TestUntrustedCertificateKeysAndLogout(t *testing.T) {
	for _, tc := range []struct {
		name string
		// untrusted makes the env and returns the URL it cannot trust.
		untrusted func(t *testing.T, opt func(*oidc.Config)) (*env, string)
		// use needs the keys and returns the code and the logged error.
		use func(t *testing.T, e *env, logs *observer.ObservedLogs) (code, msg string)
	}{
		{"logout token, discovery", untrustedDiscovery, logoutUnchecked},
		{"sign-in callback, JWKS", untrustedJWKS, signInCallback},
		{"logout token, JWKS", untrustedJWKS, logoutUnchecked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			e, where := tc.untrusted(t, func(c *oidc.Config) { c.Logger = zap.New(core) })
			code, msg := tc.use(t, e, logs)
			wantUntrusted(t, code, msg, where)
		})
	}
}

// untrustedDiscovery is an env whose IdP serves everything over
// httptest's certificate, which this host does not trust.
func untrustedDiscovery(t *testing.T, opt func(*oidc.Config)) (*env, string) {
	t.Helper()
	srv, _ := tlsIdP(t, "127.0.0.1")
	return startEnv(t, srv, opt), srv.Issuer + oidctest.PathDiscovery
}

// untrustedJWKS is an env whose IdP names a jwks_uri served over
// httptest's certificate, which this host does not trust.
func untrustedJWKS(t *testing.T, opt func(*oidc.Config)) (*env, string) {
	t.Helper()
	e := newEnv(t, opt)
	front := untrustedFront(t, e.idp.Issuer)
	e.idp.SetHooks(oidctest.Hooks{Discovery: func(doc map[string]any) { doc["jwks_uri"] = front.URL + oidctest.PathJWKS }})
	return e, front.URL + oidctest.PathJWKS
}

// signInCallback signs alice in, which verifies her ID token, and returns
// the callback's code and error.
func signInCallback(t *testing.T, e *env, _ *observer.ObservedLogs) (string, string) {
	t.Helper()
	b := newBrowser()
	res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
	return res.Code, res.Err
}

// logoutUnchecked sends a logout token the env cannot check, and returns
// the code the IdP is answered and the error the log gives.
func logoutUnchecked(t *testing.T, e *env, logs *observer.ObservedLogs) (string, string) {
	t.Helper()
	const unchecked = "back-channel logout: the logout token could not be checked"
	status, code, _ := e.backChannel(url.Values{"logout_token": {e.signLogout(e.idp.NewLogoutToken(clientID, "alice", "sid-1"))}})
	if status != http.StatusInternalServerError {
		t.Errorf("status %d, want 500: the token was not checked", status)
	}
	if n := len(e.ended.list()); n != 0 {
		t.Errorf("an unchecked logout token ended sessions (%d calls)", n)
	}
	lines := logs.FilterMessage(unchecked).All()
	if len(lines) != 1 {
		t.Fatalf("%d %q lines, want 1", len(lines), unchecked)
	}
	msg, _ := lines[0].ContextMap()["error"].(string)
	return code, msg
}
