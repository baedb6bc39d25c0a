package oidc_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/idpcheck"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/testidp"
)

// untrustedFront is an https server with httptest's own certificate,
// which no client trusts unless given it, in front of target.
func untrustedFront(t *testing.T, target string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return testidp.ServeUntrustedTLS(t, ln, httputil.NewSingleHostReverseProxy(u))
}

// tlsIdP serves a test IdP over TLS with httptest's certificate, at
// https://<host>:<port>.
func tlsIdP(t *testing.T, host string) (*oidctest.Server, *httptest.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	srv, err := oidctest.NewServer("https://" + net.JoinHostPort(host, port))
	if err != nil {
		t.Fatal(err)
	}
	return srv, testidp.ServeUntrustedTLS(t, ln, srv)
}

// wantUntrusted checks a sign-in error for an IdP certificate this host
// does not trust: the misconfigured page's code, the fix, and the URL.
func wantUntrusted(t *testing.T, code, msg, url string) {
	t.Helper()
	if code != idp.CodeMisconfigured {
		t.Errorf("code %q, want %q (trying again does not help): %s", code, idp.CodeMisconfigured, msg)
	}
	if !strings.Contains(msg, idp.UntrustedCertificateFix) || !strings.Contains(msg, url) {
		t.Errorf("error %q, want it to name %s and the fix %q", msg, url, idp.UntrustedCertificateFix)
	}
}

// TestUntrustedCertificateIsMisconfigured: an IdP whose TLS certificate
// this host does not trust (an internal CA, a name the certificate does
// not cover) fails sign-in as idp_misconfigured with the fix, not as
// idp_unavailable ("trying again may help"), wherever sign-in meets it:
// discovery at the start, the token and userinfo endpoints at the
// callback. `caddy sso check` gives the same hint.
func TestUntrustedCertificateIsMisconfigured(t *testing.T) {
	t.Run("discovery, unknown authority", func(t *testing.T) {
		srv, _ := tlsIdP(t, "127.0.0.1")
		e := startEnv(t, srv) // the default client: the system's roots
		err := e.p.Discover(context.Background())
		wantUntrusted(t, codeOf(err), err.Error(), srv.Issuer+oidctest.PathDiscovery)

		fs := idpcheck.OIDC(context.Background(), nil, e.cfg)
		if len(fs) == 0 || !strings.Contains(fs[0].Message, idp.UntrustedCertificateFix) {
			t.Errorf("caddy sso check says %v, want the fix %q", fs, idp.UntrustedCertificateFix)
		}
	})
	t.Run("discovery, another host name", func(t *testing.T) {
		srv, ts := tlsIdP(t, "localhost") // httptest's certificate names 127.0.0.1 and example.com
		e := startEnv(t, srv, func(c *oidc.Config) { c.HTTPClient = ts.Client() })
		err := e.p.Discover(context.Background())
		wantUntrusted(t, codeOf(err), err.Error(), srv.Issuer+oidctest.PathDiscovery)
	})
	for _, ep := range []struct{ name, key, path string }{
		{"token endpoint", "token_endpoint", oidctest.PathToken},
		{"userinfo endpoint", "userinfo_endpoint", oidctest.PathUserinfo},
	} {
		t.Run(ep.name, func(t *testing.T) {
			e := newEnv(t)
			front := untrustedFront(t, e.idp.Issuer)
			e.idp.SetHooks(oidctest.Hooks{
				Discovery: func(doc map[string]any) { doc[ep.key] = front.URL + ep.path },
				// Userinfo is asked only for a profile claim the ID
				// token lacks.
				IDToken: func(tok *oidctest.Token) { delete(tok.Claims, "family_name") },
			})
			b := newBrowser()
			res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
			wantUntrusted(t, res.Code, res.Err, front.URL+ep.path)
		})
	}
}

// TestTokenEndpointAnswersHTML: an answer of the token endpoint that is
// not JSON (an egress proxy's block page, even with 200 OK) is named for
// what it is, with the endpoint's URL, the status and the Content-Type,
// never the body; a 200 one is no outage, a 5xx one still is.
func TestTokenEndpointAnswersHTML(t *testing.T) {
	var status atomic.Int32
	e := newEnv(t)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(int(status.Load()))
		w.Write([]byte("<html><body>Blocked by the corporate web filter</body></html>"))
	}))
	t.Cleanup(front.Close)
	e.idp.SetHooks(oidctest.Hooks{Discovery: func(doc map[string]any) { doc["token_endpoint"] = front.URL + "/token" }})
	for _, tc := range []struct {
		status int
		code   string
		answer string
	}{
		{200, oidc.CodeTokenExchange, "200 OK"},
		{403, oidc.CodeTokenExchange, "403 Forbidden"},
		{502, oidc.CodeIdPUnavailable, "502 Bad Gateway"},
	} {
		status.Store(int32(tc.status))
		b := newBrowser()
		res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
		want := "POST " + front.URL + "/token: the token endpoint answered " + tc.answer +
			" with text/html; charset=utf-8, not JSON: a proxy or firewall between this host and the IdP?"
		if res.Code != tc.code || !strings.HasSuffix(res.Err, want) || strings.Contains(res.Err, "web filter") {
			t.Errorf("status %d: %s %q, want %s ending %q (and never the body)", tc.status, res.Code, res.Err, tc.code, want)
		}
	}
}
