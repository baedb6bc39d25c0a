package oidc_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestHostedDomain: with hosted_domain, a sign-in is admitted only when
// the ID token's hd is one of the domains (Google Workspace's account
// domain): a personal Google account with a verified address on the
// domain has no hd, and is refused (domain_not_allowed), as is an hd
// that only userinfo sends (the ID token is what the IdP signed). One
// domain is also asked for as hd on the authorization request.
func TestHostedDomain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		domains  []string
		hd       any // the ID token's hd; nil: none
		userinfo any // userinfo's hd; nil: none
		want     string
	}{
		{"workspace account", []string{"example.com"}, "example.com", nil, ""},
		{"hd in another case", []string{"Example.COM"}, "example.com", nil, ""},
		{"one of two domains", []string{"example.org", "example.com"}, "example.com", nil, ""},
		{"personal account: no hd", []string{"example.com"}, nil, nil, oidc.CodeDomainNotAllowed},
		{"another workspace", []string{"example.com"}, "example.net", nil, oidc.CodeDomainNotAllowed},
		{"a subdomain", []string{"example.com"}, "eng.example.com", nil, oidc.CodeDomainNotAllowed},
		{"hd not a string", []string{"example.com"}, []string{"example.com"}, nil, oidc.CodeDomainNotAllowed},
		{"hd from userinfo only", []string{"example.com"}, nil, "example.com", oidc.CodeDomainNotAllowed},
		{"no hosted_domain: no hd is fine", nil, nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *oidc.Config) { c.HostedDomains = tc.domains })
			e.idp.SetHooks(oidctest.Hooks{
				IDToken: func(tok *oidctest.Token) {
					if tc.hd != nil {
						tok.Claims["hd"] = tc.hd
					}
					if tc.userinfo != nil {
						delete(tok.Claims, "given_name") // so that userinfo is asked
					}
				},
				Userinfo: func(ui map[string]any) {
					if tc.userinfo != nil {
						ui["hd"] = tc.userinfo
					}
				},
			})
			b := newBrowser()
			authURL := e.begin(b, "/")
			u, err := url.Parse(authURL)
			if err != nil {
				t.Fatal(err)
			}
			wantHD := ""
			if len(tc.domains) == 1 {
				wantHD = tc.domains[0]
			}
			if got := u.Query().Get("hd"); got != wantHD {
				t.Errorf("authorization request hd = %q, want %q", got, wantHD)
			}
			res := e.mustCallback(b, e.authorize(b, authURL, "alice"))
			wantCode(t, res, tc.want)
			if tc.want != "" && !strings.Contains(res.Err, "hd") {
				t.Errorf("the error does not say why: %s", res.Err)
			}
		})
	}
}

// TestSettingsRefuseBlankValues: the rules a configuration is held to,
// JSON as well as the Caddyfile: no empty scope (it reached the request
// as a stray space), hosted_domain values that are domains, and hd left
// to hosted_domain.
func TestSettingsRefuseBlankValues(t *testing.T) {
	testCheck(t, []checkCase{
		{"empty scope", func(c *oidc.Config) { c.Scopes = []string{"openid", ""} }, "empty or blank scope"},
		{"blank scope", func(c *oidc.Config) { c.Scopes = []string{"openid", " "} }, "empty or blank scope"},
		{"scopes fine", func(c *oidc.Config) { c.Scopes = []string{"openid", "email"} }, ""},
		{"empty hosted domain", func(c *oidc.Config) { c.HostedDomains = []string{""} }, `hosted_domain "" must be a domain name`},
		{"hosted domain an address", func(c *oidc.Config) { c.HostedDomains = []string{"ada@example.com"} }, "must be a domain name"},
		{"hosted domain a URL", func(c *oidc.Config) { c.HostedDomains = []string{"https://example.com"} }, "must be a domain name"},
		{"hosted domain a pattern", func(c *oidc.Config) { c.HostedDomains = []string{"*.example.com"} }, "must be a domain name"},
		{"hd in AuthParams too", func(c *oidc.Config) {
			c.HostedDomains = []string{"example.com"}
			c.AuthParams = map[string]string{"hd": "example.org"}
		}, "hd is set by hosted_domain"},
		{"hd in AuthParams alone", func(c *oidc.Config) { c.AuthParams = map[string]string{"hd": "example.org"} }, ""},
		{"hosted domains fine", func(c *oidc.Config) { c.HostedDomains = []string{"example.com", "example.org"} }, ""},
	})
}
