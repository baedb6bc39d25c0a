package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestListRulesInJSON: caddy validate holds a JSON config to the rules the
// Caddyfile's lines meet (they live in provision.Rules.Validate,
// oidc.Config.CheckSettings and scim's base_url rule): no empty default
// group or scope, no query in sso_scim's base_url, hosted_domain wired
// through and held to its rule.
func TestListRulesInJSON(t *testing.T) {
	dir := t.TempDir()
	config := func(idpExtra, oidcExtra, scimExtra string) string {
		return `{"apps":{"sso":{"store":{"path":"` + dir + `/sso.db"},"idps":[` +
			`{"name":"a","protocol":"oidc","oidc":{"issuer":"https://a.example.com","client_id":"x"` + oidcExtra + `}` + idpExtra + `,"scim":true}]},` +
			`"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[` +
			`{"match":[{"path":["/scim/*"]}],"handle":[{"handler":"sso_scim","idps":[{"name":"a","token":"0123456789abcdef0123"}],"base_path":"/scim"` + scimExtra + `}]},` +
			`{"handle":[{"handler":"sso","idp":"a"}]}]}}}}}`
	}
	for _, tc := range []struct {
		name, json, want string // want "": accepted
	}{
		{"good config", config(`,"default_groups":["staff"]`, `,"scopes":["openid","email"],"hosted_domain":["example.com"]`, `,"base_url":"https://a.example.com/scim"`), ""},
		{"empty default group", config(`,"default_groups":[""]`, "", ""), "default_groups must not hold an empty or blank group name"},
		{"empty scope", config("", `,"scopes":["openid",""]`, ""), "scopes must not hold an empty or blank scope"},
		{"hosted_domain an address", config("", `,"hosted_domain":["ada@example.com"]`, ""), `hosted domain (hosted_domain) "ada@example.com" is not a domain name`},
		{"scim base_url with a query", config("", "", `,"base_url":"https://a.example.com/scim?x=1"`), "without a query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg caddy.Config
			if err := json.Unmarshal([]byte(tc.json), &cfg); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&cfg)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("caddy validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestHostedDomainCaddyfile: the hosted_domain line reaches the JSON, and
// its mistakes are reported at their line, with the directive.
func TestHostedDomainCaddyfile(t *testing.T) {
	block := func(line string) string {
		return "{\n\tsso {\n\t\tidp g oidc {\n\t\t\tissuer https://accounts.google.com\n\t\t\tclient_id x\n\t\t\t" + line + "\n\t\t}\n\t}\n}\n"
	}
	for _, tc := range []struct {
		name, line string
		want       []string // in the JSON, or in the error
		fails      bool
	}{
		{"two domains", "hosted_domain example.com example.org", []string{`"hosted_domain":["example.com","example.org"]`}, false},
		{"an address", "hosted_domain ada@example.com", []string{"Caddyfile:6", "sso idp g", "hosted_domain", "is not a domain name"}, true},
		{"a comma list", "hosted_domain example.com, example.org", []string{"Caddyfile:6", "sso idp g", "hosted_domain", "separate values with spaces, not commas"}, true},
		{"blank", `hosted_domain " "`, []string{"Caddyfile:6", "sso idp g", "hosted_domain"}, true},
		{"blank scope", `scopes openid " "`, []string{"Caddyfile:6", "sso idp g", "scopes must not hold an empty or blank scope"}, true},
		{"blank default group", `default_groups staff " "`, []string{"Caddyfile:6", "sso idp g", "default_groups must not hold an empty or blank group name"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(block(tc.line)), map[string]any{"filename": "Caddyfile"})
			got := string(out)
			if tc.fails {
				if err == nil {
					t.Fatalf("accepted: %s", out)
				}
				got = err.Error()
			} else if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
		})
	}
}
