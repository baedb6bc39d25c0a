package scim_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/provision/scim"
)

// braced stands for a config's placeholders: tokens resolved later.
func braced(token string) bool { return strings.HasPrefix(token, "{") }

// TestEndpointCheckSettings holds an endpoint's settings, as a config
// writes them, to the rules: every refusal names the setting or IdP at
// fault, and never the token.
func TestEndpointCheckSettings(t *testing.T) {
	entra := scim.EndpointIdP{Name: "entra", Token: entraToken}
	okta := scim.EndpointIdP{Name: "okta", Token: oktaToken}
	tests := []struct {
		name string
		e    scim.Endpoint
		want string // "" accepts
	}{
		{"one idp", scim.Endpoint{IdPs: []scim.EndpointIdP{entra}}, ""},
		{"two idps", scim.Endpoint{IdPs: []scim.EndpointIdP{entra, okta}}, ""},
		{"no idp yet", scim.Endpoint{BasePath: "/scim/v2"}, ""},
		{"all settings", scim.Endpoint{IdPs: []scim.EndpointIdP{entra}, BasePath: "/", BaseURL: "https://id.example.com/scim", MaxBodyBytes: 1 << 10}, ""},
		{"placeholder token not checked", scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra", Token: "{env.T}"}}}, ""},
		{"placeholders shared", scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra", Token: "{env.T}"}, {Name: "okta", Token: "{env.T}"}}}, ""},
		{"no name", scim.Endpoint{IdPs: []scim.EndpointIdP{{Token: entraToken}}}, "an idp has no name"},
		{"listed twice, two tokens to rotate one", scim.Endpoint{IdPs: []scim.EndpointIdP{entra, {Name: "entra", Token: oktaToken}}}, ""},
		{"listed three times", scim.Endpoint{IdPs: []scim.EndpointIdP{entra, {Name: "entra", Token: oktaToken}, {Name: "entra", Token: oktaToken + "3"}}}, "idp entra is listed more than twice"},
		{"listed twice with one token", scim.Endpoint{IdPs: []scim.EndpointIdP{entra, entra}}, "idp entra is given the same bearer token twice"},
		{"no token", scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra"}}}, "idp entra has no token"},
		{"short token", scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra", Token: "hunter2"}}}, "idp entra: the bearer token must be at least 16 characters"},
		{"shared token", scim.Endpoint{IdPs: []scim.EndpointIdP{entra, {Name: "okta", Token: entraToken}}}, "idps entra and okta share a bearer token; each needs its own"},
		{"relative base path", scim.Endpoint{BasePath: "scim/v2"}, `base_path "scim/v2" must start with /`},
		{"base URL without scheme", scim.Endpoint{BaseURL: "scim.example.com/scim"}, `base_url "scim.example.com/scim" is not an absolute http(s) URL`},
		{"base URL of another scheme", scim.Endpoint{BaseURL: "ftp://x/scim"}, "not an absolute http(s) URL"},
		{"negative body size", scim.Endpoint{MaxBodyBytes: -1}, "max_body_size -1 bytes must be between 1 byte and 1 GiB"},
		{"body size above 1 GiB", scim.Endpoint{MaxBodyBytes: 1<<30 + 1}, "max_body_size 1073741825 bytes must be between 1 byte and 1 GiB"},
		{"body size of 1 GiB", scim.Endpoint{MaxBodyBytes: 1 << 30}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.e.CheckSettings(braced)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "":
				return
			case err == nil:
				t.Fatalf("accepted; want %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			for _, c := range tt.e.IdPs {
				if c.Token != "" && strings.Contains(err.Error(), c.Token) {
					t.Errorf("error %q reveals a token", err)
				}
			}
		})
	}
}

// TestEndpointHandler: the handler of an endpoint with one IdP is that
// IdP's; with two, each token reaches its own IdP and no other token
// passes.
func TestEndpointHandler(t *testing.T) {
	accounts := newAccounts(t)
	entra := scim.EndpointIdP{Name: "entra", Token: entraToken}
	okta := scim.EndpointIdP{Name: "okta", Token: oktaToken}

	one, err := scim.Endpoint{IdPs: []scim.EndpointIdP{entra}}.Handler(accounts, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := one.(*scim.Handler); !ok || h.IdP() != "entra" {
		t.Errorf("one IdP: handler %T, want entra's *scim.Handler", one)
	}

	two, err := scim.Endpoint{IdPs: []scim.EndpointIdP{entra, okta}, BasePath: "/v2"}.Handler(accounts, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]int{entraToken: http.StatusOK, oktaToken: http.StatusOK, "wrong-token-0123456789": http.StatusUnauthorized} {
		r := httptest.NewRequest(http.MethodGet, "/v2/Users", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		two.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("token %.5s…: status %d, want %d", token, w.Code, want)
		}
	}

	if _, err := (scim.Endpoint{IdPs: []scim.EndpointIdP{entra, {Name: "okta", Token: entraToken}}}).Handler(accounts, nil); err == nil {
		t.Error("two IdPs sharing a token: built a handler")
	}
	if _, err := (scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra", Token: "short"}}}).Handler(accounts, nil); err == nil {
		t.Error("a short resolved token: built a handler")
	}
}

// TestTokenRotation: an IdP listed twice in an endpoint takes both tokens,
// so that its token can be rotated without a gap: set the new one beside
// the old, move the IdP to it, remove the old. Each is compared in
// constant time; any other token, or the other IdP's for this one, is a
// 401; one IdP's two tokens may not be the same.
func TestTokenRotation(t *testing.T) {
	const next = "entra-next-token-abcdefghijkl"
	for _, tt := range []struct {
		name string
		idps []scim.EndpointIdP
	}{
		{"one idp, two tokens", []scim.EndpointIdP{{Name: "entra", Token: entraToken}, {Name: "entra", Token: next}}},
		{"beside another idp", []scim.EndpointIdP{{Name: "entra", Token: entraToken}, {Name: "okta", Token: oktaToken}, {Name: "entra", Token: next}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			e.accounts.SCIMManaged = func(string) bool { return true }
			h, err := scim.Endpoint{IdPs: tt.idps}.Handler(e.accounts, nil)
			if err != nil {
				t.Fatal(err)
			}
			for token, want := range map[string]int{entraToken: 200, next: 200, "entra-wrong-token-0123456789": 401, "": 401} {
				r := httptest.NewRequest(http.MethodGet, "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "nobody"`), nil)
				if token != "" {
					r.Header.Set("Authorization", "Bearer "+token)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != want {
					t.Errorf("token %.12q…: %d, want %d: %s", token, w.Code, want, w.Body)
				}
			}
		})
	}
	e := newEnv(t, "entra", entraToken)
	if _, err := scim.New(scim.Config{IdP: "entra", Token: entraToken, NextToken: entraToken, Accounts: e.accounts}); err == nil {
		t.Error("New took one token as both of an IdP's")
	}
	if _, err := scim.New(scim.Config{IdP: "entra", Token: entraToken, NextToken: "short", Accounts: e.accounts}); err == nil {
		t.Error("New took a short next token")
	}
}
