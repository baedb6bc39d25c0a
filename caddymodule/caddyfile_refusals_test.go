package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/caddymodule"
)

// TestCaddyfileRefusesMisreadLines adds to TestCaddyfileErrors the lines
// a parser could otherwise read as something else (an extra value dropped,
// 0 read as unset): each fails adaptation with the directive, its line and
// what is expected.
func TestCaddyfileRefusesMisreadLines(t *testing.T) {
	testAdaptErrors(t, []adaptErrorCase{
		// A second global sso option would silently replace the first; it
		// is reported at its own line (it was ":0", before its first token).
		{"global sso twice", "{\n\tsso {\n\t\tpages_dir /a\n\t}\n\tsso {\n\t\tpages_dir /b\n\t}\n}\n", []string{"Caddyfile:5", "sso: the global option may appear only once"}},
		{"global sso with an argument", "{\n\tsso x {\n\t\tpages_dir /a\n\t}\n}\n", []string{"Caddyfile:2"}},
		// session's arguments would be dropped.
		{"session with an argument", "{\n\tsso {\n\t\tsession 8h {\n\t\t\tlifetime 1h\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "session takes a block"}},
		// store: a third value or a block of bolt would be dropped.
		{"store bolt with two paths", "{\n\tsso {\n\t\tstore bolt /a.db /b.db\n\t}\n}\n", []string{"Caddyfile:3", "store bolt <path>"}},
		// "" would read as no path: the default file under the data dir.
		{"store bolt with an empty path", "{\n\tsso {\n\t\tstore bolt \"\"\n\t}\n}\n", []string{"Caddyfile:3", "store bolt <path>"}},
		{"store postgres with an empty DSN", "{\n\tsso {\n\t\tstore postgres \"\"\n\t}\n}\n", []string{"Caddyfile:3", "store postgres <dsn>"}},
		{"store bolt with a block", "{\n\tsso {\n\t\tstore bolt /a.db {\n\t\t\tpool_size 5\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "sso store bolt: takes no block"}},
		// idp: a third value on the idp line, or a map line without names.
		{"idp with three values", "{\n\tsso {\n\t\tidp a oidc extra {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "sso idp: expected: idp <name> oidc|saml"}},
		{"map without a name", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tmap email\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "sso idp a: expected: map <attribute> <name>"}},
		{"sp_cert with three files", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tsp_cert a.crt a.key b.crt\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "sso idp a: expected: sp_cert <certificate file> <key file>"}},
		// sso: a header line of three values, an identity_jwt of an odd count.
		{"header with three values", "example.com {\n\tsso {\n\t\theader user X-A X-B\n\t}\n}\n", []string{"Caddyfile:3", "sso: expected: header <field> <Header-Name>|-"}},
		{"identity_jwt key without value", "example.com {\n\tsso {\n\t\tidentity_jwt ttl\n\t}\n}\n", []string{"Caddyfile:3", "sso: identity_jwt: expected: identity_jwt [header <Header-Name>] [ttl <duration>]"}},
		{"identity_jwt unknown key", "example.com {\n\tsso {\n\t\tidentity_jwt issuer https://a.example.com\n\t}\n}\n", []string{"Caddyfile:3", `sso identity_jwt: unknown setting "issuer" (expected header, ttl, audience or key_rotation)`}},
		{"scim idp with three values", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T} extra\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim: expected: idp <name> <token>"}},
		// A single value given twice: the second would be dropped.
		{"pages_dir with two values", "{\n\tsso {\n\t\tpages_dir /a /b\n\t}\n}\n", []string{"Caddyfile:3", "sso: pages_dir takes one value"}},
		// 0 is no size: it would read as unset (the default).
		{"scim max_body_size 0", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tmax_body_size 0\n\t}\n}\n", []string{"Caddyfile:13", `sso_scim: max_body_size "0" is not a size`}},
		// 0 is no duration: it would read as unset (the default 8h).
		{"session lifetime 0", "{\n\tsso {\n\t\tsession {\n\t\t\tlifetime 0\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", `sso session: lifetime "0" is not a positive duration`}},
	})
}

// TestCaddyfileAcceptsAndReads pins what the parser must accept and
// how it reads it, where a mutation that refused or misread the line went
// unnoticed: the lines that may repeat, the defaults a bare setting takes,
// and audit_retention 0 (keep every event).
func TestCaddyfileAcceptsAndReads(t *testing.T) {
	const global = "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n"
	tests := []struct {
		name, caddyfile string
		want            []string // in the adapted JSON, compacted
	}{
		// allow and deny add a rule per line.
		{"two deny lines", global + "example.com {\n\tsso {\n\t\tdeny group contractors\n\t\tdeny user bob@example.com\n\t}\n}\n",
			[]string{`"deny":[{"kind":"group","values":["contractors"]},{"kind":"user","values":["bob@example.com"]}]`}},
		// A bare pass_id_token takes the ID token's default header.
		{"bare pass_id_token", global + "example.com {\n\tsso {\n\t\tpass_id_token\n\t}\n}\n", []string{`"pass_id_token":"X-Forwarded-Id-Token"`}},
		{"bare pass_access_token", global + "example.com {\n\tsso {\n\t\tpass_access_token\n\t}\n}\n", []string{`"pass_access_token":"X-Forwarded-Access-Token"`}},
		// jit may follow the settings that need it (checked at the block's
		// end), and tenant_id is the issuer's GUID in any case.
		{"jit after the settings that need it", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tlink_by_email\n\t\t\toptional email\n\t\t\tcreate_as pending\n\t\t\tjit\n\t\t}\n\t}\n}\n",
			[]string{`"create_as":"pending"`, `"jit":true`, `"link_by_email":true`, `"optional":["email"]`}},
		{"tenant_id the issuer's", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\n\t\t\tclient_id x\n\t\t\ttenant_id 72F988BF-86F1-41AF-91AB-2D7CD011DB47\n\t\t}\n\t}\n}\n",
			[]string{`"tenant_id":"72F988BF-86F1-41AF-91AB-2D7CD011DB47"`}},
		{"audit_retention 0 keeps every event", "{\n\tsso {\n\t\taudit_retention 0\n\t}\n}\n", []string{`"audit_retention":0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tt.caddyfile), map[string]any{"filename": "Caddyfile"})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			var buf strings.Builder
			var v any
			if err := json.Unmarshal(cfg, &v); err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(v)
			buf.Write(raw)
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("adapted JSON lacks %s:\n%s", w, buf.String())
				}
			}
		})
	}
}

// TestJSONConfigRefusals adds to TestJSONValidation the refusals a JSON
// config, which no Caddyfile parser checked, gets from the module's
// Validate, with the setting at fault.
func TestJSONConfigRefusals(t *testing.T) {
	const a = `{"name":"a","protocol":"oidc","oidc":{"issuer":"https://a.example.com","client_id":"x"}}`
	tests := []struct {
		name, module, json string
		want               []string
	}{
		// The second block would silently replace the first.
		{"idp defined twice", "app", `{"idps":[` + a + `,` + a + `]}`, []string{"sso idp a: defined twice"}},
		{"scim without idps", "scim", `{"idps":[]}`, []string{"sso_scim: at least one idp <name> <token> is required"}},
		// Each did nothing without jit (review 33).
		{"link_by_email without jit", "app", `{"idps":[` + strings.Replace(a, `"oidc"`, `"oidc","link_by_email":true`, 1) + `]}`, []string{"sso idp a: provision: link_by_email acts only on users JIT creates"}},
		{"create_as pending without jit", "app", `{"idps":[` + strings.Replace(a, `"oidc"`, `"oidc","create_as":"pending"`, 1) + `]}`, []string{"sso idp a: provision: create_as pending acts only on users JIT creates"}},
		{"optional without jit", "app", `{"idps":[` + strings.Replace(a, `"oidc"`, `"oidc","optional":["email"]`, 1) + `]}`, []string{"sso idp a: provision: optional acts only on users JIT creates"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mod caddy.Validator = new(caddymodule.App)
			if tt.module == "scim" {
				mod = new(caddymodule.SCIMHandler)
			}
			if err := caddy.StrictUnmarshalJSON([]byte(tt.json), mod); err != nil {
				t.Fatalf("does not load: %v", err)
			}
			err := mod.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
