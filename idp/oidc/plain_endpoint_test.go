package oidc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestHTTPSIssuerNamesPlainLoopbackEndpoint: an https IdP (trusted here)
// whose discovery document names a plain-http endpoint on this host's
// loopback — Caddy's admin API, say — is refused as misconfigured, and
// nothing is sent there: not the token request with the code and the
// client secret, not a JWKS fetch. The same endpoints named by a
// plain-http loopback issuer (a local test IdP) are its own.
func TestHTTPSIssuerNamesPlainLoopbackEndpoint(t *testing.T) {
	var hits atomic.Int32
	loopback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "not an IdP", http.StatusNotFound)
	}))
	t.Cleanup(loopback.Close)
	for _, field := range []string{"token_endpoint", "jwks_uri", "userinfo_endpoint"} {
		t.Run(field, func(t *testing.T) {
			srv, ts := tlsIdP(t, "127.0.0.1")
			srv.SetHooks(oidctest.Hooks{Discovery: func(doc map[string]any) { doc[field] = loopback.URL + "/stop" }})
			e := startEnv(t, srv, func(c *oidc.Config) { c.HTTPClient = ts.Client() })
			err := e.p.Discover(context.Background())
			if code := idp.ErrorCode(err, ""); code != idp.CodeMisconfigured || !strings.Contains(err.Error(), field) {
				t.Errorf("discovery naming %s %s/stop: %v (code %q), want %s naming it", field, loopback.URL, err, code, idp.CodeMisconfigured)
			}
			if resp, err := e.startLogin(newBrowser(), "/"); err == nil && resp.StatusCode == http.StatusFound {
				t.Errorf("a sign-in started with %s on plain-http loopback", field)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback endpoint was sent %d request(s)", n)
	}
}
