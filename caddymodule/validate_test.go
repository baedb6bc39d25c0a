package caddymodule_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	ssogateway "github.com/caddy-sso/caddy-sso/gateway"
)

// TestDefaultPathPrefixIsGateways: the sso directive's default path
// prefix is gateway's, the one the sample pages (docs/pages.md) link with.
func TestDefaultPathPrefixIsGateways(t *testing.T) {
	if caddymodule.DefaultPathPrefix != ssogateway.DefaultPathPrefix {
		t.Errorf("caddymodule.DefaultPathPrefix %q, gateway.DefaultPathPrefix %q", caddymodule.DefaultPathPrefix, ssogateway.DefaultPathPrefix)
	}
}

// TestJSONValidation holds JSON configs, which no Caddyfile parser has
// checked, to the rules the Caddyfile enforces: each module's Validate
// (which Caddy runs at load, and `caddy validate` with it) refuses what
// the Caddyfile refuses, with the same message, and accepts the edges
// and the documented special values.
func TestJSONValidation(t *testing.T) {
	const oidcIdP = `{"name":"a","protocol":"oidc","oidc":{"issuer":"https://a.example.com","client_id":"x"%s}}`
	idp := func(extra string) string { return `{"idps":[` + strings.Replace(oidcIdP, "%s", extra, 1) + `]}` }
	tests := []struct {
		name, module, json string
		want               []string // nil: accepted
	}{
		// sso_scim: the body cap of the Caddyfile parser.
		{"scim body above 1 GiB", "scim", `{"idps":[{"name":"entra","token":"{env.T}"}],"max_body_size":1073741825}`, []string{"max_body_size 1073741825 bytes must be between 1 byte and 1 GiB"}},
		{"scim body of 1 GiB", "scim", `{"idps":[{"name":"entra","token":"{env.T}"}],"max_body_size":1073741824}`, nil},

		// session: a negative lifetime would silently become the default;
		// the documented negative values (no idle timeout, no cap) stay.
		{"negative session lifetime", "app", `{"session":{"lifetime":"-1h"}}`, []string{"sso session: lifetime -1h0m0s must not be negative"}},
		// a JSON number is nanoseconds: 28800 is not eight hours.
		{"session lifetime as a number", "app", `{"session":{"lifetime":28800}}`, []string{"lifetime 28.8µs", "with a unit"}},
		{"idle timeout as a number", "app", `{"session":{"idle_timeout":3600}}`, []string{"idle_timeout 3.6µs", "with a unit"}},
		{"audit retention as a number", "app", `{"audit_retention":90}`, []string{"sso audit_retention 90ns must be at least 1s", "with a unit"}},
		{"session without idle timeout or cap", "app", `{"session":{"lifetime":"8h","idle_timeout":-1,"max_sessions_per_user":-1}}`, nil},

		// idp: the settings of one protocol only.
		{"oidc idp with saml settings", "app", `{"idps":[{"name":"a","protocol":"oidc","oidc":{"issuer":"https://a.example.com","client_id":"x"},"saml":{"metadata_url":"https://idp.example.com/md"}}]}`, []string{"sso idp a", `an oidc IdP takes no "saml" settings`}},
		{"saml idp with oidc settings", "app", `{"idps":[{"name":"a","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md"},"oidc":{"issuer":"https://a.example.com","client_id":"x"}}]}`, []string{"sso idp a", `a saml IdP takes no "oidc" settings`}},
		{"idp named .", "app", `{"idps":[{"name":".","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md"}}]}`, []string{`name "." must be usable as a URL path segment`}},
		{"idp named ..", "app", `{"idps":[{"name":"..","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md"}}]}`, []string{`name ".." must be usable as a URL path segment`}},
		{"idp named with dots", "app", `{"idps":[{"name":"corp.okta","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md"}}]}`, nil},
		// idp/oidc's rules, before Provision.
		{"oidc scopes without openid", "app", idp(`,"scopes":["profile"]`), []string{`scopes must include "openid"`}},
		{"oidc algorithm none", "app", idp(`,"algorithms":["none"]`), []string{`signature algorithm "none" is not supported`}},
		{"oidc HS256 with a short secret", "app", idp(`,"algorithms":["HS256"],"client_secret":"short"`), []string{"HS256 needs a client secret of at least 32 bytes"}},
		{"oidc HS256 with a secret placeholder", "app", idp(`,"algorithms":["HS256"],"client_secret":"{env.SECRET}"`), nil},
		{"oidc issuer with a query", "app", `{"idps":[{"name":"a","protocol":"oidc","oidc":{"issuer":"https://a.example.com/?x=1","client_id":"x"}}]}`, []string{"an issuer has no query"}},
		{"oidc negative clock skew", "app", idp(`,"clock_skew":"-1s"`), []string{"durations must not be negative"}},
		{"oidc clock skew of an hour", "app", idp(`,"clock_skew":"1h"`), []string{"clock_skew 1h0m0s must be at most 5m0s"}},
		{"oidc clock skew of 5 minutes", "app", idp(`,"clock_skew":"5m"`), nil},
		// store.
		{"postgres pool beyond int32", "app", `{"store":{"backend":"postgres","dsn":"{env.DB}","pool_size":3000000000}}`, []string{"pool_size 3000000000"}},
		{"postgres malformed literal dsn", "app", `{"store":{"backend":"postgres","dsn":"postgres://u:hunter2@db:notaport/sso"}}`, []string{"sso store: the connection string (not shown", "does not parse"}},
		{"postgres pool of int32's maximum", "app", `{"store":{"backend":"postgres","dsn":"{env.DB}","pool_size":2147483647}}`, nil},
		{"postgres literal dsn", "app", `{"store":{"backend":"postgres","dsn":"postgres://caddy@db.internal:5432/sso?sslmode=disable"}}`, nil},
		{"postgres dsn placeholder", "app", `{"store":{"backend":"postgres","dsn":"{env.SSO_DATABASE_URL}"}}`, nil},

		// sso handler: header names.
		{"identity header Cookie", "handler", `{"headers":{"user":"Cookie"}}`, []string{"header user Cookie: Cookie is reserved"}},
		{"identity JWT header Cookie", "handler", `{"identity_jwt":{"header":"cookie"}}`, []string{"identity_jwt header cookie: cookie is reserved"}},
		{"token header overwrites identity header", "handler", `{"pass_access_token":"X-Forwarded-User"}`, []string{"and pass_access_token X-Forwarded-User name one header"}},
		{"identity JWT header Authorization", "handler", `{"set_authorization_header":true,"identity_jwt":{"header":"Authorization"}}`, []string{"Authorization is set only by set_authorization_header"}},
		{"identity header with a space", "handler", `{"headers":{"user":"X Bad"}}`, []string{`"X Bad" is not a header name`}},
		{"token header with parentheses", "handler", `{"pass_id_token":"X(A)"}`, []string{`"X(A)" is not a header name`}},
		{"two fields one header", "handler", `{"header_set":"none","headers":{"email":"X-Mail","preferred_username":"x_mail"}}`, []string{"header email X-Mail and header preferred_username x_mail name one header"}},
		{"fields trading names", "handler", `{"headers":{"email":"X-Forwarded-User","user":"X-Forwarded-Email"}}`, nil},
		// identity_jwt: key rotation at least the token lifetime.
		{"key_rotation shorter than ttl", "handler", `{"identity_jwt":{"ttl":"1h","key_rotation":"1m"}}`, []string{"key_rotation 1m0s is shorter than ttl 1h0m0s"}},
		{"identity_jwt defaults", "handler", `{"identity_jwt":{}}`, nil},
		{"key_rotation equal to ttl", "handler", `{"identity_jwt":{"ttl":"1h","key_rotation":"1h"}}`, nil},
		// JWT times are seconds, and keys are named by the rotation in seconds.
		{"identity_jwt in nanoseconds", "handler", `{"identity_jwt":{"ttl":10,"key_rotation":10}}`, []string{"must be whole seconds, at least 1s"}},
		{"key_rotation of 1.5s", "handler", `{"identity_jwt":{"ttl":"1s","key_rotation":"1500ms"}}`, []string{"must be whole seconds"}},
		// access rules: literal values only.
		{"allow user empty", "handler", `{"allow":[{"kind":"user","values":[""]}]}`, []string{`access rule user ""`, "neither empty nor placeholders"}},
		{"allow group placeholder", "handler", `{"allow":[{"kind":"group","values":["{env.ADMINS}"]}]}`, []string{`access rule group "{env.ADMINS}"`}},
		// path_prefix.
		{"path_prefix /", "handler", `{"path_prefix":"/"}`, []string{`path_prefix "/"`, "not / alone"}},
		{"path_prefix with a query", "handler", `{"path_prefix":"/x?y/"}`, []string{`path_prefix "/x?y/"`}},
		{"path_prefix with a control character", "handler", `{"path_prefix":"/a\tb/"}`, []string{"path_prefix", "control characters"}},
		{"path_prefix nested", "handler", `{"path_prefix":"/admin/.sso/"}`, nil},
		// Review of 2026-12: every duration is at least 1s with a unit (a
		// bare JSON number is nanoseconds); statement_timeout is one
		// PostgreSQL applies (under 1ms it would be its 0, no timeout; above
		// INT_MAX ms it refuses every connection).
		{"statement_timeout as a number", "app", `{"store":{"backend":"postgres","dsn":"{env.DB}","statement_timeout":5}}`, []string{"sso store: statement_timeout 5ns", "with a unit"}},
		{"statement_timeout under 1ms", "app", `{"store":{"backend":"postgres","dsn":"{env.DB}","statement_timeout":"500us"}}`, []string{"statement_timeout 500µs must be between 1s and"}},
		{"statement_timeout of 30 days", "app", `{"store":{"backend":"postgres","dsn":"{env.DB}","statement_timeout":"720h"}}`, []string{"statement_timeout 720h0m0s", "PostgreSQL's maximum"}},
		{"statement_timeout at PostgreSQL's maximum", "app", `{"store":{"backend":"postgres","dsn":"{env.DB}","statement_timeout":"596h31m23.647s"}}`, nil},
		{"oidc clock_skew as a number", "app", idp(`,"clock_skew":60`), []string{"sso idp a: clock_skew 60ns must be at least 1s", "with a unit"}},
		{"saml clock_skew as a number", "app", `{"idps":[{"name":"a","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md","clock_skew":60}}]}`, []string{"sso idp a: clock_skew 60ns must be at least 1s"}},
		{"saml metadata_refresh as a number", "app", `{"idps":[{"name":"a","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md","metadata_refresh":86400}}]}`, []string{"sso idp a: metadata_refresh 86.4µs must be at least 1s"}},
		{"token_refresh_margin as a number", "handler", `{"pass_access_token":"X-Forwarded-Access-Token","token_refresh_margin":60}`, []string{"token_refresh_margin 60ns must be at least 1s"}},
		{"token_refresh_margin negative", "handler", `{"pass_access_token":"X-Forwarded-Access-Token","token_refresh_margin":"-1m"}`, []string{"token_refresh_margin -1m0s must not be negative"}},
		// The message names only the setting at fault.
		{"idle_timeout alone sub-second", "app", `{"session":{"idle_timeout":"500ms"}}`, []string{"sso session: idle_timeout 500ms"}},
		{"null idp", "app", `{"idps":[{"name":"a","protocol":"oidc","oidc":{"issuer":"https://a.example.com","client_id":"x"}},null]}`, []string{"sso idps[1]: null"}},
		{"saml entity_id with spaces", "app", `{"idps":[{"name":"a","protocol":"saml","saml":{"metadata_url":"https://idp.example.com/md","entity_id":" https://sp.example.com "}}]}`, []string{"sso idp a", "must not have surrounding spaces"}},
		// allowed_domains' rule holds the routes' domain rules too.
		{"deny domain wildcard", "handler", `{"deny":[{"kind":"domain","values":["*.evil.example"]}]}`, []string{`deny: access rule domain "*.evil.example" is not a domain name`}},
		{"allow domain URL", "handler", `{"allow":[{"kind":"domain","values":["https://corp.example"]}]}`, []string{`allow: access rule domain "https://corp.example" is not a domain name`}},
		{"allow domain with @", "handler", `{"allow":[{"kind":"domain","values":["@corp.example"]}]}`, nil},
		{"base_url port 0", "handler", `{"base_url":"https://app.example.com:0"}`, []string{"base_url", "the port must be 1-65535"}},
		{"base_url port 65536", "handler", `{"base_url":"https://app.example.com:65536"}`, []string{"the port must be 1-65535"}},
		{"base_url port 8443", "handler", `{"base_url":"https://app.example.com:8443"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mod caddy.Validator
			switch tt.module {
			case "app":
				mod = new(caddymodule.App)
			case "handler":
				mod = new(caddymodule.Handler)
			case "scim":
				mod = new(caddymodule.SCIMHandler)
			}
			if err := caddy.StrictUnmarshalJSON([]byte(tt.json), mod); err != nil {
				t.Fatalf("does not load: %v", err)
			}
			err := mod.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}
