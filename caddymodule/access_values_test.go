package caddymodule_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestAccessValuesThatMatchNoOneRefusedAtTheirLine: an access rule or
// allowed_domains value that can match no one (a wildcard or bare domain
// in a user rule, a list written with commas) fails the Caddyfile, so
// `caddy validate`, at its line, instead of loading a deny rule that
// denies nobody or an allow-list that refuses a listed domain.
func TestAccessValuesThatMatchNoOneRefusedAtTheirLine(t *testing.T) {
	const global = "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n%s\t\t}\n\t}\n}\n"
	route := func(line string) string {
		return strings.Replace(global, "%s", "", 1) + "\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\t" + line + "\n\t}\n}\n"
	}
	for _, tc := range []struct {
		name, caddyfile string
		want            []string
	}{
		{"deny user wildcard", route("deny user *@evil.example"), []string{"Caddyfile:13", `deny: access rule user "*@evil.example" is not an email address`, "domain evil.example"}},
		{"deny user bare domain", route("deny user @evil.example"), []string{"Caddyfile:13", `"@evil.example" is not an email address`, "domain evil.example"}},
		{"deny user padded", route("deny user \" mallory@evil.example\""), []string{"Caddyfile:13", "white space at an end"}},
		{"deny domain comma list", route("deny domain evil.example, bad.example"), []string{"Caddyfile:13", `deny: access rule domain "evil.example," is not a domain name: separate values with spaces, not commas`}},
		{"allow user comma list", route("allow user a@corp.example, b@corp.example"), []string{"Caddyfile:13", `allow: access rule user "a@corp.example," is not an email address: separate values with spaces, not commas`}},
		{"allowed_domains comma list", strings.Replace(global, "%s", "\t\t\tallowed_domains a.example, b.example\n", 1), []string{"Caddyfile:6", `"a.example," is not a domain name: separate values with spaces, not commas`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tc.caddyfile), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatal("adapted without error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
