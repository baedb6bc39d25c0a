package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// TestFailedSignInsCountedWithReason: caddy_sso_logins_total counts each
// failed sign-in under the reference code the person was shown, so that
// an alert can tell apart the failures an operator must act on from
// callbacks anyone can forge; and a sign-in that cannot even start (the
// IdP's discovery away, or contradicting the configuration) counts too,
// so that the alert fires during a total outage of the IdP, when no
// sign-in reaches a callback.
func TestFailedSignInsCountedWithReason(t *testing.T) {
	signIn := func(t *testing.T, w *caddytest.OIDC) int {
		resp := caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "ada", "ada-pw")
		caddytest.ReadBody(t, resp)
		return resp.StatusCode
	}
	for _, tt := range []struct {
		name   string
		setup  func(w *caddytest.OIDC)
		tries  int
		status int
		try    func(t *testing.T, w *caddytest.OIDC) int
		want   string
	}{
		{
			name:   "discovery down",
			setup:  func(w *caddytest.OIDC) { w.IdP.SetUnavailable(true, oidctest.PathDiscovery) },
			tries:  3,
			status: http.StatusBadGateway,
			try:    signIn,
			want:   `caddy_sso_logins_total{idp="test",protocol="oidc",reason="idp_unavailable",result="failed"} 3`,
		},
		{
			name: "discovery offers only PKCE plain",
			setup: func(w *caddytest.OIDC) {
				w.IdP.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) { d["code_challenge_methods_supported"] = []string{"plain"} }})
			},
			tries:  1,
			status: http.StatusInternalServerError,
			try:    signIn,
			want:   `caddy_sso_logins_total{idp="test",protocol="oidc",reason="idp_misconfigured",result="failed"} 1`,
		},
		{
			name: "client secret rotated at the IdP",
			setup: func(w *caddytest.OIDC) {
				w.IdP.RegisterClient(oidctest.Client{ID: caddytest.ClientID, Secret: "rotated-secret",
					RedirectURIs: []string{w.GW.Base + "/.sso/oidc/test/callback"}})
			},
			tries:  1,
			status: http.StatusBadRequest,
			try:    signIn,
			want:   `caddy_sso_logins_total{idp="test",protocol="oidc",reason="token_exchange_failed",result="failed"} 1`,
		},
		{
			name:   "forged callback",
			tries:  1,
			status: http.StatusBadRequest,
			try: func(t *testing.T, w *caddytest.OIDC) int {
				resp := caddytest.NewBrowser(t).Get(w.GW.Base + "/.sso/oidc/test/callback?code=x&state=y")
				caddytest.ReadBody(t, resp)
				return resp.StatusCode
			},
			want: `caddy_sso_logins_total{idp="test",protocol="oidc",reason="flow_missing",result="failed"} 1`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := caddytest.NewOIDC(t, "\t\t\tjit\n")
			if tt.setup != nil {
				tt.setup(w)
			}
			w.Start()
			for range tt.tries {
				if got := tt.try(t, w); got != tt.status {
					t.Fatalf("status %d, want %d", got, tt.status)
				}
			}
			_, body := w.GW.Admin(http.MethodGet, "/metrics")
			var logins []string
			for _, line := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(line, "caddy_sso_logins_total{") {
					logins = append(logins, line)
				}
			}
			if len(logins) != 1 || logins[0] != tt.want {
				t.Errorf("logins_total:\n  %s\nwant only\n  %s", strings.Join(logins, "\n  "), tt.want)
			}
		})
	}
}
