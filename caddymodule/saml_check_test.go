package caddymodule_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/caddymodule"
)

// TestSAMLSettingRules: each rule of a SAML setting (saml.Config.Check)
// refuses its bad value in a Caddyfile at `caddy adapt`, at the line that
// writes it and naming the directive, and in a JSON config at `caddy
// validate` (the app's Validate) with the same words.
func TestSAMLSettingRules(t *testing.T) {
	const url = `metadata_url https://idp.example.com/md`
	const jsonURL = `"metadata_url":"https://idp.example.com/md"`
	tests := []struct {
		name  string
		lines []string // of the saml idp block, which opens at Caddyfile:3
		line  int      // of the error
		json  string   // the same settings: "saml":{…}, or none
		want  string
	}{
		{"no metadata source", []string{"jit"}, 3, ``, "saml needs one of metadata_url, metadata_file or metadata"},
		{"two metadata sources", []string{url, "metadata_file /etc/md.xml"}, 5, `"saml":{` + jsonURL + `,"metadata_file":"/etc/md.xml"}`, "the IdP metadata is already given"},
		{"plain http metadata_url", []string{"metadata_url http://idp.example.com/md"}, 4, `"saml":{"metadata_url":"http://idp.example.com/md"}`, "metadata_url: "},
		{"request_binding", []string{url, "request_binding artifact"}, 5, `"saml":{` + jsonURL + `,"request_binding":"artifact"}`, `unknown request_binding "artifact" (expected one of: redirect, post)`},
		{"three sp_cert", []string{url, "sp_cert a.crt a.key", "sp_cert b.crt b.key", "sp_cert c.crt c.key"}, 7,
			`"saml":{` + jsonURL + `,"sp_certs":[{"cert":"a.crt","key":"a.key"},{"cert":"b.crt","key":"b.key"},{"cert":"c.crt","key":"c.key"}]}`, "sp_cert may appear at most 2 times"},
		{"clock_skew above the maximum", []string{url, "clock_skew 10m"}, 5, `"saml":{` + jsonURL + `,"clock_skew":"10m"}`, "clock_skew 10m0s must be at most 3m0s"},
		{"clock_skew under 1s", []string{url, "clock_skew 500ms"}, 5, `"saml":{` + jsonURL + `,"clock_skew":"500ms"}`, "clock_skew 500ms must be at least 1s"},
		{"metadata_refresh under 1s", []string{url, "metadata_refresh 1ms"}, 5, `"saml":{` + jsonURL + `,"metadata_refresh":"1ms"}`, "metadata_refresh 1ms must be at least 1s"},
		{"max_response_size", []string{url, "max_response_size 1GB"}, 5, `"saml":{` + jsonURL + `,"max_response_size":1000000000}`, "max_response_size 1000000000 bytes must be between 16 KiB and 16 MiB"},
		{"entity_id", []string{url, `entity_id " https://sp.example.com "`}, 5, `"saml":{` + jsonURL + `,"entity_id":" https://sp.example.com "}`, `entity_id " https://sp.example.com " must not have surrounding spaces`},
		{"authn_context", []string{url, `authn_context "urn:a b"`}, 5, `"saml":{` + jsonURL + `,"authn_context":["urn:a b"]}`, `authn_context "urn:a b" must be a class reference URI, without spaces`},
		// The Caddyfile's own spellings, which JSON shares.
		{"sp_cert without its key", []string{url, `sp_cert a.crt ""`}, 5, `"saml":{` + jsonURL + `,"sp_certs":[{"cert":"a.crt"}]}`, "sp_cert needs a certificate file and a key file"},
		{"metadata as a path", []string{"metadata /etc/md.xml"}, 4, `"saml":{"metadata":"/etc/md.xml"}`, "metadata takes the IdP metadata XML itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caddyfile := "{\n\tsso {\n\t\tidp a saml {\n\t\t\t" + strings.Join(tt.lines, "\n\t\t\t") + "\n\t\t}\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatal("adapted without error")
			}
			for _, w := range []string{"Caddyfile:" + strconv.Itoa(tt.line), "sso idp a: ", tt.want} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("adapt: error %q lacks %q", err, w)
				}
			}
			config := `{"idps":[{"name":"a","protocol":"saml"}]}`
			if tt.json != "" {
				config = `{"idps":[{"name":"a","protocol":"saml",` + tt.json + `}]}`
			}
			app := new(caddymodule.App)
			if err := caddy.StrictUnmarshalJSON([]byte(config), app); err != nil {
				t.Fatalf("does not load: %v", err)
			}
			if err := app.Validate(); err == nil || !strings.Contains(err.Error(), "sso idp a: "+tt.want) {
				t.Errorf("validate: error %v, want %q", err, "sso idp a: "+tt.want)
			}
		})
	}
}
