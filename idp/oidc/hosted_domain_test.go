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
// that only userinfo sends (the ID token is what the IdP signed). The
// domains are compared as allowed_domains and the routes' domain rules
// compare (internal/maildomain): "@example.com", "example.com." and the
// Unicode spelling of an xn-- hd are that hd, where a rule of its own once
// refused every account of such a Workspace. One domain is also asked for
// as hd on the authorization request, as written less "@" and the root's
// dot.
func TestHostedDomain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		domains  []string
		hd       any    // the ID token's hd; nil: none
		userinfo any    // userinfo's hd; nil: none
		sent     string // the authorization request's hd
		want     string
	}{
		{"workspace account", []string{"example.com"}, "example.com", nil, "example.com", ""},
		{"hd in another case", []string{"Example.COM"}, "example.com", nil, "Example.COM", ""},
		{"one of two domains", []string{"example.org", "example.com"}, "example.com", nil, "", ""},
		{"domain written with @", []string{"@example.com"}, "example.com", nil, "example.com", ""},
		{"domain written with the root's dot", []string{"example.com."}, "example.com", nil, "example.com", ""},
		{"Unicode domain, xn-- hd", []string{"bücher.example"}, "xn--bcher-kva.example", nil, "bücher.example", ""},
		{"xn-- domain, Unicode hd", []string{"xn--bcher-kva.example"}, "Bücher.example", nil, "xn--bcher-kva.example", ""},
		{"ß is not ss", []string{"strasse.example"}, "straße.example", nil, "strasse.example", oidc.CodeDomainNotAllowed},
		{"personal account: no hd", []string{"example.com"}, nil, nil, "example.com", oidc.CodeDomainNotAllowed},
		{"another workspace", []string{"example.com"}, "example.net", nil, "example.com", oidc.CodeDomainNotAllowed},
		{"a subdomain", []string{"example.com"}, "eng.example.com", nil, "example.com", oidc.CodeDomainNotAllowed},
		{"hd not a string", []string{"example.com"}, []string{"example.com"}, nil, "example.com", oidc.CodeDomainNotAllowed},
		{"hd from userinfo only", []string{"example.com"}, nil, "example.com", "example.com", oidc.CodeDomainNotAllowed},
		{"no hosted_domain: no hd is fine", nil, nil, nil, "", ""},
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
			if got := u.Query().Get("hd"); got != tc.sent {
				t.Errorf("authorization request hd = %q, want %q", got, tc.sent)
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
// as a stray space), hosted_domain values that are domains by the rule
// allowed_domains follows (internal/maildomain: a comma list, which would
// be the domain "example.com,", is refused, "@example.com" is not), and hd
// left to hosted_domain.
func TestSettingsRefuseBlankValues(t *testing.T) {
	testCheck(t, []checkCase{
		{"empty scope", func(c *oidc.Config) { c.Scopes = []string{"openid", ""} }, "empty or blank scope"},
		{"blank scope", func(c *oidc.Config) { c.Scopes = []string{"openid", " "} }, "empty or blank scope"},
		{"scopes fine", func(c *oidc.Config) { c.Scopes = []string{"openid", "email"} }, ""},
		{"empty hosted domain", func(c *oidc.Config) { c.HostedDomains = []string{""} }, `hosted domain (hosted_domain) "" is not a domain name`},
		{"blank hosted domain", func(c *oidc.Config) { c.HostedDomains = []string{" "} }, `hosted domain (hosted_domain) " " is not a domain name`},
		{"hosted domains a comma list", func(c *oidc.Config) { c.HostedDomains = []string{"example.com,", "example.org"} }, `hosted domain (hosted_domain) "example.com," is not a domain name: separate values with spaces`},
		{"hosted domains a semicolon list", func(c *oidc.Config) { c.HostedDomains = []string{"example.com;example.org"} }, "separate values with spaces"},
		{"hosted domain an address", func(c *oidc.Config) { c.HostedDomains = []string{"ada@example.com"} }, "is not a domain name"},
		{"hosted domain a URL", func(c *oidc.Config) { c.HostedDomains = []string{"https://example.com"} }, "is not a domain name"},
		{"hosted domain a pattern", func(c *oidc.Config) { c.HostedDomains = []string{"*.example.com"} }, "is not a domain name"},
		{"hd in AuthParams too", func(c *oidc.Config) {
			c.HostedDomains = []string{"example.com"}
			c.AuthParams = map[string]string{"hd": "example.org"}
		}, "hd is set by hosted_domain"},
		{"hd in AuthParams alone", func(c *oidc.Config) { c.AuthParams = map[string]string{"hd": "example.org"} }, ""},
		{"hosted domains fine", func(c *oidc.Config) { c.HostedDomains = []string{"example.com", "example.org"} }, ""},
		{"hosted domains written with @ and the root's dot", func(c *oidc.Config) { c.HostedDomains = []string{"@example.com", "example.org.", "bücher.example"} }, ""},
	})
}
