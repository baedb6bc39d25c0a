package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sso/caddy-sso/caddymodule"
)

var update = flag.Bool("update", false, "rewrite golden files with the current output")

// TestCaddyfileAdapt compares `caddy adapt` output with golden files: each
// testdata/caddyfile_adapt/*.caddyfiletest holds a Caddyfile, a line of
// dashes, and the JSON it must adapt to. Run with -update after an
// intended change and review the diff.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	const sep = "----------"
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), sep)
			if !ok {
				t.Fatalf("%s: no %q separator", file, sep)
			}
			got := adapt(t, input)
			if *update {
				out := strings.TrimRight(input, "\n") + "\n" + sep + "\n" + got + "\n"
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if strings.TrimSpace(want) != got {
				t.Errorf("adapted JSON differs from golden file (run go test -run TestCaddyfileAdapt -update to accept)\n--- got\n%s\n--- want\n%s", got, strings.TrimSpace(want))
			}
		})
	}
}

func adapt(t *testing.T, caddyfile string) string {
	t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapt warning: %s", w.String())
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, cfg, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// scimGlobal and scimGlobal2 define the IdPs the sso_scim rows of
// TestCaddyfileErrors name (scimGlobal is 9 lines, scimGlobal2 14).
const (
	scimGlobal  = "{\n\tsso {\n\t\tidp entra oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t\tscim\n\t\t}\n\t}\n}\n"
	scimGlobal2 = "{\n\tsso {\n\t\tidp entra oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t\tscim\n\t\t}\n\t\tidp okta oidc {\n\t\t\tissuer https://okta.example.com\n\t\t\tclient_id y\n\t\t\tscim\n\t\t}\n\t}\n}\n"
)

// TestCaddyfileErrors checks that bad configs fail at adaptation with the
// directive, the line and a message that says what is expected.
func TestCaddyfileErrors(t *testing.T) {
	testAdaptErrors(t, []adaptErrorCase{
		{"unknown setting", "{\n\tsso {\n\t\tstorage x\n\t}\n}\n", []string{"Caddyfile:3", `unknown setting "storage"`}},
		{"bad store", "{\n\tsso {\n\t\tstore sqlite /x\n\t}\n}\n", []string{"Caddyfile:3", "store bolt <path>"}},
		{"bad duration", "{\n\tsso {\n\t\tsession {\n\t\t\tlifetime soon\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "lifetime", "not a positive duration"}},
		{"unknown protocol", "{\n\tsso {\n\t\tidp a ldap {\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", `unknown protocol "ldap"`}},
		{"unknown preset", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tpreset azure\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso idp a", `unknown preset "azure"`, "entra"}},
		{"missing issuer", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "sso idp a", "needs issuer"}},
		{"bad update", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tupdate sometimes\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", `unknown update "sometimes"`, "force, import"}},
		{"bad optional", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\toptional uniqueUserId\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "optional attribute"}},
		{"bad token_auth", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example\n\t\t\ttoken_auth private_key_jwt\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", `token_auth "private_key_jwt"`, "client_secret_basic or client_secret_post"}},
		{"jit takes no value", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tjit yes\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "jit takes no value"}},
		// The second idp line, not the closing brace of its block.
		{"duplicate idp", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a\n\t\t\tclient_id x\n\t\t}\n\t\tidp a oidc {\n\t\t\tissuer https://a\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{`"a" is defined twice, at Caddyfile:7 (first at Caddyfile:3)`}},
		{"saml without metadata", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tjit\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "sso idp a", "metadata_url, metadata_file or metadata"}},
		{"saml two metadata sources", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tmetadata_file /etc/md.xml\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "metadata_file", "already given"}},
		{"saml plain http metadata", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url http://idp.example.com/md\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso idp a", "must be https"}},
		{"saml inline metadata not xml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata /etc/md.xml\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "metadata_file"}},
		// Review of 2026-12: a setting's rule is reported at its own line,
		// naming that setting only.
		{"audit_retention under 1s", "{\n\tsso {\n\t\taudit_retention 500ms\n\t}\n}\n", []string{"Caddyfile:3", "sso: audit_retention 500ms must be at least 1s"}},
		{"negative audit_retention", "{\n\tsso {\n\t\taudit_retention -1h\n\t}\n}\n", []string{"Caddyfile:3", "0 keeps every event"}},
		{"session lifetime under 1s", "{\n\tsso {\n\t\tsession {\n\t\t\tidle_timeout 1h\n\t\t\tlifetime 500ms\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "sso session: lifetime 500ms must be at least 1s"}},
		{"session idle_timeout under 1s", "{\n\tsso {\n\t\tsession {\n\t\t\tidle_timeout 999ms\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso session: idle_timeout 999ms must be at least 1s"}},
		{"bare session", "{\n\tsso {\n\t\tsession\n\t}\n}\n", []string{"Caddyfile:3", "session takes a block"}},
		{"empty session block", "{\n\tsso {\n\t\tsession {\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "session takes a block"}}, // its closing brace
		{"statement_timeout under 1ms", "{\n\tsso {\n\t\tstore postgres {env.DB} {\n\t\t\tstatement_timeout 500us\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso store postgres: statement_timeout 500µs must be at least 1s"}},
		{"statement_timeout above PostgreSQL's maximum", "{\n\tsso {\n\t\tstore postgres {env.DB} {\n\t\t\tstatement_timeout 30d\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "statement_timeout 720h0m0s", "PostgreSQL's maximum"}},
		{"oidc clock_skew under 1s", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tclock_skew 500ms\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "clock_skew 500ms must be at least 1s"}},
		{"saml metadata_refresh under 1s", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tmetadata_refresh 1ms\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "metadata_refresh 1ms must be at least 1s"}},
		{"saml entity_id with spaces", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tentity_id \" https://sp.example.com \"\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "sso idp a", "must not have surrounding spaces"}},
		{"oidc clock_skew too large", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tclock_skew 10m\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "clock_skew 10m0s must be at most 5m0s"}},
		{"oidc plain http issuer", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tclient_id x\n\t\t\tissuer http://a.example.com\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "issuer", "must be https"}},
		{"unknown map attribute", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tmap shoeSize shoe\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", `unknown attribute "shoeSize"`}},
		{"allowed_domains wildcard", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tallowed_domains *.example.com\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", `"*.example.com" is not a domain name`}},
		// HMAC needs the secret, which may come on a later line.
		{"oidc HS256 before its short secret", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\talgorithms HS256\n\t\t\tclient_secret short\n\t\t}\n\t}\n}\n", []string{"Caddyfile:7", "HS256 needs a client secret of at least 32 bytes"}},
		{"handler unknown mode", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tmode verify\n\t}\n}\n", []string{"Caddyfile:13", `unknown mode "verify"`}},
		{"handler unknown access kind", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tallow team eng\n\t}\n}\n", []string{"Caddyfile:13", `allow: unknown access rule kind "team"`}},
		{"handler deny domain wildcard", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tdeny domain *.evil.example\n\t}\n}\n", []string{"Caddyfile:13", `deny: access rule domain "*.evil.example" is not a domain name`}},
		{"handler allow domain URL", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tallow domain corp.example https://evil.example\n\t}\n}\n", []string{"Caddyfile:13", `"https://evil.example" is not a domain name`}},
		{"handler plain http base_url", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tbase_url http://example.com\n\t}\n}\n", []string{"Caddyfile:13", "base_url", "must be https"}},
		{"handler base_url port 0", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tbase_url https://example.com:0\n\t}\n}\n", []string{"Caddyfile:13", "base_url", "the port must be 1-65535"}},
		{"handler base_url port 99999", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tbase_url https://example.com:99999\n\t}\n}\n", []string{"Caddyfile:13", "the port must be 1-65535"}},
		{"handler token_refresh_margin under 1s", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nhttp://localhost:0 {\n\tsso {\n\t\tpath_prefix /a/\n\t\tpass_access_token\n\t\ttoken_refresh_margin 500ms\n\t}\n}\n", []string{"Caddyfile:14", "token_refresh_margin 500ms must be at least 1s"}},
		// An empty value is not "unset": it is refused at its line.
		{"saml empty metadata_url", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url \"\"\n\t\t\tmetadata_file /x.xml\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso idp a: metadata_url needs a value"}},
		{"saml empty metadata_file", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tmetadata_file \"\"\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "metadata_file needs a value"}},
		{"saml empty binding", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_file /x.xml\n\t\t\trequest_binding \"\"\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "request_binding needs a value"}},
		{"saml bad binding", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\trequest_binding artifact\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", `unknown request_binding "artifact"`, "redirect, post"}},
		{"saml sp_cert one file", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tsp_cert /etc/sp.pem\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sp_cert <certificate file> <key file>"}},
		{"saml three sp_certs", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tsp_cert a.crt a.key\n\t\t\tsp_cert b.crt b.key\n\t\t\tsp_cert c.crt c.key\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "sp_cert may appear at most 2 times"}},
		{"saml clock skew too large", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tclock_skew 10m\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso idp a: clock_skew 10m0s must be at most 3m0s"}},
		{"saml bad size", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmax_response_size 1GB\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "max_response_size 1000000000 bytes must be between 16 KiB and 16 MiB"}},
		{"saml flag takes no value", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tidp_initiated yes\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "idp_initiated takes no value"}},
		{"oidc setting in saml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "client_id is an oidc setting"}},
		{"saml setting in oidc", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "metadata_url is a saml setting"}},
		{"handler unknown setting", "example.com {\n\tsso {\n\t\tcookie x\n\t}\n}\n", []string{"Caddyfile:3", `sso: unknown setting "cookie"`}},
		// An IdP defined in the site's sso, as a first attempt writes it
		// (review of 2026-12): the error says where a definition goes.
		{"handler idp block in a site", "app.example.com {\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer https://example.okta.com\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\n",
			[]string{"Caddyfile:3", "idp okta oidc defines an IdP", "global sso option", "{ sso { idp okta oidc { … } } }", "sso okta"}},
		{"handler idp block in a site after the directive's", "app.example.com {\n\tsso okta {\n\t\tidp okta saml {\n\t\t}\n\t}\n}\n",
			[]string{"Caddyfile:3", "idp okta saml defines an IdP", "global sso option"}},
		{"handler idp line with a protocol in a site", "app.example.com {\n\tsso {\n\t\tidp okta oidc\n\t}\n}\n",
			[]string{"Caddyfile:3", "idp okta oidc defines an IdP", "global sso option", "sso okta"}},
		{"handler bad header set", "example.com {\n\tsso {\n\t\theaders fancy\n\t}\n}\n", []string{"Caddyfile:", `unknown header set "fancy"`}},
		{"handler bad field", "example.com {\n\tsso {\n\t\theader shoe_size X-Shoe\n\t}\n}\n", []string{"Caddyfile:", `unknown identity field "shoe_size"`}},
		{"handler bad prefix", "example.com {\n\tsso {\n\t\tpath_prefix /auth\n\t}\n}\n", []string{"Caddyfile:", "path_prefix", "must start and end with /"}},
		{"handler allow idp not of the route", scimGlobal2 + "app.example.com {\n\tsso okta {\n\t\tallow idp entra\n\t}\n}\n", []string{"Caddyfile:16", `allow idp "entra": not one of this route's IdPs (okta)`}},
		{"handler bad idp rule kind", "example.com {\n\tsso {\n\t\tallow team eng\n\t}\n}\n", []string{"Caddyfile:", `unknown access rule kind "team" (expected group, domain, user or idp)`}},
		{"handler base_url with path", "example.com {\n\tsso {\n\t\tbase_url https://example.com/app\n\t}\n}\n", []string{"Caddyfile:", "base_url", "without a path"}},
		{"handler base_url plain http", "example.com {\n\tsso {\n\t\tbase_url http://example.com\n\t}\n}\n", []string{"Caddyfile:", "base_url", "must be https"}},
		{"handler margin without tokens", "example.com {\n\tsso {\n\t\ttoken_refresh_margin 2m\n\t}\n}\n", []string{"Caddyfile:", "token_refresh_margin needs pass_access_token"}},
		{"handler bad margin", "example.com {\n\tsso {\n\t\tpass_access_token\n\t\ttoken_refresh_margin soon\n\t}\n}\n", []string{"Caddyfile:4", "token_refresh_margin", "not a positive duration"}},
		{"handler access token in Authorization", "example.com {\n\tsso {\n\t\tpass_access_token Authorization\n\t}\n}\n", []string{"Caddyfile:", "set_authorization_header"}},
		{"handler two token header names", "example.com {\n\tsso {\n\t\tpass_id_token X-A X-B\n\t}\n}\n", []string{"Caddyfile:3", "pass_id_token", "at most one header name"}},
		{"handler bearer takes no value", "example.com {\n\tsso {\n\t\tset_authorization_header yes\n\t}\n}\n", []string{"Caddyfile:3", "sso: set_authorization_header takes no value"}},
		{"handler same header for both tokens", "example.com {\n\tsso {\n\t\tpass_access_token X-T\n\t\tpass_id_token x-t\n\t}\n}\n", []string{"Caddyfile:", "two header names"}},
		{"handler tokens from saml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t}\n\t}\n}\n\nexample.com {\n\tsso a {\n\t\tpass_access_token\n\t}\n}\n", []string{"Caddyfile:10", `IdP "a" is saml`, "only OpenID Connect"}},
		{"offline_access in saml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\toffline_access\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "offline_access is an oidc setting"}},
		{"handler unknown mode", "example.com {\n\tsso {\n\t\tmode verify\n\t}\n}\n", []string{"Caddyfile:", `unknown mode "verify"`, "auth_request or forward_auth"}},
		{"handler mode without value", "example.com {\n\tsso {\n\t\tmode\n\t}\n}\n", []string{"Caddyfile:3", "sso: mode needs a value"}},
		// A written "" is no value: it would read as unset and turn the
		// setting off (an empty tenant_id admits every tenant).
		{"empty tenant_id", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t\ttenant_id \"\"\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "sso idp a: tenant_id needs a value"}},
		{"empty client_secret", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t\tclient_secret \"\"\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "client_secret needs a value"}},
		{"empty default group", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tdefault_groups staff \"\"\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "default_groups needs at least one value, and no empty one"}},
		{"empty idp_entity_id", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_file /x.xml\n\t\t\tidp_entity_id \"\"\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "idp_entity_id needs a value"}},
		{"empty pages_dir", "{\n\tsso {\n\t\tpages_dir \"\"\n\t}\n}\n", []string{"Caddyfile:3", "pages_dir needs a value"}},
		{"handler empty base_url", "example.com {\n\tsso {\n\t\tbase_url \"\"\n\t}\n}\n", []string{"Caddyfile:3", "sso: base_url needs a value"}},
		{"handler empty default_idp", "example.com {\n\tsso {\n\t\tdefault_idp \"\"\n\t}\n}\n", []string{"Caddyfile:3", "sso: default_idp needs a value"}},
		{"handler empty header name", "example.com {\n\tsso {\n\t\theader email \"\"\n\t}\n}\n", []string{"Caddyfile:3", "header <field> <Header-Name>|-"}},
		{"handler empty token header", "example.com {\n\tsso {\n\t\tpass_access_token \"\"\n\t}\n}\n", []string{"Caddyfile:3", "at most one header name"}},
		{"handler empty jwt audience", "example.com {\n\tsso {\n\t\tidentity_jwt audience \"\"\n\t}\n}\n", []string{"Caddyfile:3", "sso identity_jwt: audience needs a value"}},
		{"handler jwt key twice", "example.com {\n\tsso {\n\t\tidentity_jwt ttl 1m ttl 2m\n\t}\n}\n", []string{"Caddyfile:3", "sso identity_jwt: ttl given twice"}},
		// A block after a setting that takes none.
		{"handler block after value", "example.com {\n\tsso {\n\t\tmode protect {\n\t\t\theaders none\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "sso: unexpected block: the setting on this line takes no block"}},
		{"idp block after value", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tclient_id x {\n\t\t\t\tjit\n\t\t\t}\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso idp a: unexpected block"}},
		{"pages_dir without value", "{\n\tsso {\n\t\tpages_dir\n\t}\n}\n", []string{"Caddyfile:3"}},
		{"negative audit retention", "{\n\tsso {\n\t\taudit_retention -1h\n\t}\n}\n", []string{"Caddyfile:3", "audit_retention", "0 keeps every event"}},
		{"zero sessions per user", "{\n\tsso {\n\t\tsession {\n\t\t\tmax_sessions_per_user 0\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "max_sessions_per_user", "not a positive number"}},
		// Header names (gateway.CheckUpstreamHeaders): one rule for
		// identity, token and identity JWT headers, reported at the line
		// of the setting at fault (the later of two).
		{"handler identity header Cookie", "example.com {\n\tsso {\n\t\theader user Cookie\n\t}\n}\n", []string{"Caddyfile:3", "header user Cookie: Cookie is reserved", "name a header of your own"}},
		{"handler identity header reserved in another spelling", "example.com {\n\tsso {\n\t\tpath_prefix /auth/\n\t\theader groups transfer_encoding\n\t}\n}\n", []string{"Caddyfile:4", "transfer_encoding is reserved"}},
		{"handler identity header Proxy-*", "example.com {\n\tsso {\n\t\theader user Proxy-User\n\t}\n}\n", []string{"Caddyfile:3", "Proxy-User is reserved"}},
		{"handler identity JWT header Cookie", "example.com {\n\tsso {\n\t\tidentity_jwt header Cookie\n\t}\n}\n", []string{"Caddyfile:3", "identity_jwt header Cookie: Cookie is reserved"}},
		{"handler token header overwrites identity header", "example.com {\n\tsso {\n\t\tpass_access_token X-Forwarded-User\n\t}\n}\n", []string{"Caddyfile:3", "headers default (user: X-Forwarded-User) and pass_access_token X-Forwarded-User name one header", "two header names"}},
		{"handler identity JWT header Authorization", "example.com {\n\tsso {\n\t\tset_authorization_header\n\t\tidentity_jwt header Authorization\n\t}\n}\n", []string{"Caddyfile:4", "identity_jwt header Authorization: Authorization is set only by set_authorization_header"}},
		{"handler identity header Authorization", "example.com {\n\tsso {\n\t\theader user authorization\n\t}\n}\n", []string{"Caddyfile:3", "header user authorization: Authorization is set only by set_authorization_header"}},
		{"handler header name with a space", "example.com {\n\tsso {\n\t\theader user \"X Bad\"\n\t}\n}\n", []string{"Caddyfile:3", `header user: "X Bad" is not a header name`, "letters, digits and"}},
		{"handler token header name with parentheses", "example.com {\n\tsso {\n\t\tpass_access_token \"X(A)\"\n\t}\n}\n", []string{"Caddyfile:3", `pass_access_token: "X(A)" is not a header name`}},
		{"handler two fields one header", "example.com {\n\tsso {\n\t\theader email X-Forwarded-User\n\t}\n}\n", []string{"Caddyfile:3", "headers default (user: X-Forwarded-User) and header email X-Forwarded-User name one header"}},
		{"handler token and identity header clash at the later line", "example.com {\n\tsso {\n\t\tpass_id_token X-Id\n\t\tpath_prefix /auth/\n\t\theader user x_id\n\t}\n}\n", []string{"Caddyfile:5", "header user x_id and pass_id_token X-Id name one header"}},
		{"handler identity JWT and identity header clash", "example.com {\n\tsso {\n\t\tidentity_jwt header X-Identity\n\t\theader idp x-identity\n\t}\n}\n", []string{"Caddyfile:4", "header idp x-identity and identity_jwt header X-Identity name one header"}},
		{"handler identity JWT and token header clash", "example.com {\n\tsso {\n\t\tpass_access_token\n\t\tidentity_jwt header X-Forwarded-Access-Token\n\t}\n}\n", []string{"Caddyfile:4", "pass_access_token X-Forwarded-Access-Token and identity_jwt header X-Forwarded-Access-Token name one header"}},
		// identity_jwt: a token must not outlive its key's publication.
		{"handler key_rotation shorter than ttl", "example.com {\n\tsso {\n\t\tidentity_jwt ttl 1h key_rotation 1m\n\t}\n}\n", []string{"Caddyfile:3", "identity_jwt key_rotation 1m0s is shorter than ttl 1h0m0s", "at least ttl"}},
		{"handler key_rotation shorter than the default ttl", "example.com {\n\tsso {\n\t\tidentity_jwt key_rotation 1m\n\t}\n}\n", []string{"Caddyfile:3", "key_rotation 1m0s is shorter than ttl 5m0s"}},
		// path_prefix: a path of its own, reachable.
		{"handler prefix /", "example.com {\n\tsso {\n\t\tpath_prefix /\n\t}\n}\n", []string{"Caddyfile:3", `path_prefix "/"`, "not / alone"}},
		{"handler prefix with a query", "example.com {\n\tsso {\n\t\tpath_prefix /x?y/\n\t}\n}\n", []string{"Caddyfile:3", `path_prefix "/x?y/"`, "no ?, #, %"}},
		{"handler prefix with a percent", "example.com {\n\tsso {\n\t\tpath_prefix /a%20b/\n\t}\n}\n", []string{"Caddyfile:3", `path_prefix "/a%20b/"`}},
		{"handler prefix with a dot segment", "example.com {\n\tsso {\n\t\tpath_prefix /a/../\n\t}\n}\n", []string{"Caddyfile:3", `path_prefix "/a/../"`, "not . or .."}},
		{"handler prefix with an empty segment", "example.com {\n\tsso {\n\t\tpath_prefix /a//\n\t}\n}\n", []string{"Caddyfile:3", `path_prefix "/a//"`}},
		// What Provision would refuse without a line.
		{"handler names no idp of two", scimGlobal2 + "app.example.com {\n\tsso\n}\n", []string{"Caddyfile:16", "2 identity providers are configured (entra, okta): name one"}},
		{"handler without global sso", "example.com {\n\tsso foo\n}\n", []string{"Caddyfile:2", "no identity provider is configured"}},
		{"handler without global sso, no idp named", "example.com {\n\tsso\n}\n", []string{"Caddyfile:2", "no identity provider is configured"}},
		{"handler with a global sso of no idp", "{\n\tsso {\n\t\taudit_retention 1d\n\t}\n}\n\nexample.com {\n\tsso\n}\n", []string{"Caddyfile:8", "no identity provider is configured"}},
		{"oidc scopes without openid", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tscopes profile email\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "sso idp a", `scopes must include "openid"`}},
		{"oidc algorithm none", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\talgorithms RS256 none\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", `signature algorithm "none" is not supported`, "RS256, RS384"}},
		{"oidc HS256 with a short secret", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tclient_secret short\n\t\t\talgorithms HS256\n\t\t}\n\t}\n}\n", []string{"Caddyfile:7", "HS256 needs a client secret of at least 32 bytes"}},
		{"oidc issuer with a query", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com/?tenant=x\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "an issuer has no query"}},
		{"oidc issuer with a fragment", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com/#x\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "without fragment"}},
		{"store pool_size beyond int32", "{\n\tsso {\n\t\tstore postgres {env.SSO_DATABASE_URL} {\n\t\t\tstatement_timeout 2s\n\t\t\tpool_size 3000000000\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "pool_size 3000000000 is more connections than PostgreSQL allows"}},
		{"store malformed literal dsn", "{\n\tsso {\n\t\tstore postgres postgres://u:hunter2@db:notaport/sso\n\t}\n}\n", []string{"Caddyfile:3", "sso store postgres: the connection string (not shown", "does not parse"}},
		// IdP names are URL path segments.
		{"idp named .", "{\n\tsso {\n\t\tidp . oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", `name "." must be usable as a URL path segment`, "not . or .."}},
		{"idp named ..", "{\n\tsso {\n\t\tidp .. saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", `name ".." must be usable as a URL path segment`}},
		// A single-valued line given twice is refused, not replaced.
		{"idp allowed_domains twice", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tallowed_domains a.com\n\t\t\tallowed_domains b.com\n\t\t}\n\t}\n}\n", []string{"sso idp a: allowed_domains given twice, at Caddyfile:7 (first at Caddyfile:6)"}},
		{"idp default_groups twice", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tdefault_groups staff\n\t\t\tdefault_groups eng\n\t\t}\n\t}\n}\n", []string{"default_groups given twice, at Caddyfile:7 (first at Caddyfile:6)"}},
		{"idp issuer twice", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tissuer https://b.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"issuer given twice, at Caddyfile:5 (first at Caddyfile:4)"}},
		{"idp optional twice", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\toptional email\n\t\t\toptional lastName\n\t\t}\n\t}\n}\n", []string{"optional given twice, at Caddyfile:6 (first at Caddyfile:5)"}},
		{"idp scopes twice", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tscopes openid\n\t\t\tscopes openid email\n\t\t}\n\t}\n}\n", []string{"scopes given twice, at Caddyfile:7"}},
		{"idp algorithms twice", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\talgorithms RS256\n\t\t\talgorithms ES256\n\t\t}\n\t}\n}\n", []string{"algorithms given twice, at Caddyfile:7"}},
		{"idp map of one attribute twice", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a.example.com\n\t\t\tclient_id x\n\t\t\tmap email mail\n\t\t\tmap firstName given_name\n\t\t\tmap email upn\n\t\t}\n\t}\n}\n", []string{"map email given twice, at Caddyfile:8 (first at Caddyfile:6)"}},
		{"global store twice", "{\n\tsso {\n\t\tstore bolt /a.db\n\t\tstore bolt /b.db\n\t}\n}\n", []string{"sso store given twice, at Caddyfile:4 (first at Caddyfile:3)"}},
		{"session lifetime twice", "{\n\tsso {\n\t\tsession {\n\t\t\tlifetime 8h\n\t\t}\n\t\tsession {\n\t\t\tlifetime 1h\n\t\t}\n\t}\n}\n", []string{"sso session lifetime given twice, at Caddyfile:7 (first at Caddyfile:4)"}},
		{"store pool_size twice", "{\n\tsso {\n\t\tstore postgres {env.DB} {\n\t\t\tpool_size 5\n\t\t\tpool_size 6\n\t\t}\n\t}\n}\n", []string{"sso store postgres pool_size given twice, at Caddyfile:5"}},
		{"handler idp twice", scimGlobal2 + "app.example.com {\n\tsso {\n\t\tidp okta\n\t\tidp entra\n\t}\n}\n", []string{"sso idp given twice, at Caddyfile:18 (first at Caddyfile:17)"}},
		{"handler idp in the block after the directive's", scimGlobal2 + "app.example.com {\n\tsso okta {\n\t\tidp entra\n\t}\n}\n", []string{"sso idp given twice, at Caddyfile:17 (first at Caddyfile:16)"}},
		{"handler header of one field twice", "example.com {\n\tsso {\n\t\theader user X-A\n\t\theader user X-B\n\t}\n}\n", []string{"sso header user given twice, at Caddyfile:4 (first at Caddyfile:3)"}},
		{"handler path_prefix twice", "example.com {\n\tsso {\n\t\tpath_prefix /a/\n\t\tpath_prefix /b/\n\t}\n}\n", []string{"sso path_prefix given twice, at Caddyfile:4"}},
		{"handler pass_access_token twice", "example.com {\n\tsso {\n\t\tpass_access_token X-A\n\t\tpass_access_token X-B\n\t}\n}\n", []string{"sso pass_access_token given twice, at Caddyfile:4"}},
		{"scim base_path twice", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tbase_path /a\n\t\tbase_path /b\n\t}\n}\n", []string{"sso_scim base_path given twice, at Caddyfile:14 (first at Caddyfile:13)"}},
		// sso_scim: after scimGlobal (9 lines) the site starts on line 10.
		{"scim no idp", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tbase_path /scim/v2\n\t}\n}\n", []string{"Caddyfile:13", "sso_scim: at least one idp <name> <token> is required"}},
		{"scim idp without token", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim: expected: idp <name> <token>"}},
		{"scim unknown idp", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp okta {env.SCIM_TOKEN_OKTA}\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim idp okta", `no identity provider named "okta" in the global sso option (defined: entra)`}},
		{"scim idp not marked", "{\n\tsso {\n\t\tidp entra oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nscim.example.com {\n\tsso_scim {\n\t\tidp entra {env.SCIM_TOKEN_ENTRA}\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim idp entra", "add the line `scim`"}},
		{"scim without global sso", "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.SCIM_TOKEN_ENTRA}\n\t}\n}\n", []string{"Caddyfile:3", "sso_scim idp entra", "no global sso option"}},
		{"scim idp three times", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.A}\n\t\tidp entra {env.B}\n\t\tidp entra {env.C}\n\t}\n}\n", []string{"Caddyfile:14", "idp entra is listed more than twice"}},
		{"scim short literal token", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra hunter2\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim: idp entra", "at least 16 characters"}},
		{"scim shared literal token", scimGlobal2 + "scim.example.com {\n\tsso_scim {\n\t\tidp entra 0123456789abcdefXYZ\n\t\tidp okta 0123456789abcdefXYZ\n\t}\n}\n", []string{"Caddyfile:", "share a bearer token"}},
		{"scim argument", scimGlobal + "scim.example.com {\n\tsso_scim entra {\n\t}\n}\n", []string{"Caddyfile:11", "sso_scim: expected: sso_scim { idp <name> <token>"}},
		{"scim unknown setting", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tpath /scim\n\t}\n}\n", []string{"Caddyfile:13", `sso_scim: unknown setting "path"`, "base_path"}},
		{"scim relative base_path", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tbase_path scim/v2\n\t}\n}\n", []string{"Caddyfile:13", `base_path "scim/v2" must start with /`}},
		{"scim bad base_url", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tbase_url scim.example.com/scim\n\t}\n}\n", []string{"Caddyfile:13", "base_url", "not an absolute http(s) URL"}},
		{"scim bad body size", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tmax_body_size lots\n\t}\n}\n", []string{"Caddyfile:13", `sso_scim: max_body_size "lots" is not a size`}},
		// Review 33: configs that loaded and then refused every sign-in, or
		// held a line that did nothing. tenant_id is compared with tid,
		// always the tenant's GUID, and a tenant-specific issuer names it.
		{"tenant_id a domain name", entraIdP("tenant_id contoso.onmicrosoft.com"), []string{"Caddyfile:6", `sso idp a: tenant_id: "contoso.onmicrosoft.com" is not a tenant ID (a GUID`}},
		{"tenant_id not the issuer's", entraIdP("tenant_id 11111111-2222-4333-8444-555555555555"), []string{"Caddyfile:6", "tenant_id 11111111-2222-4333-8444-555555555555 is not the tenant of issuer", "72f988bf-86f1-41af-91ab-2d7cd011db47"}},
		// Without a secret, token_auth was dropped and the token endpoint
		// refused every sign-in (invalid_client); at the block's line, as
		// the secret may come after it.
		{"token_auth without client_secret", entraIdP("token_auth client_secret_basic"), []string{"Caddyfile:3", "sso idp a: token_auth client_secret_basic sends the client secret: add client_secret"}},
		// A placeholder where none is resolved was used as written.
		{"require_acr placeholder", entraIdP("require_acr {env.ACR}"), []string{"Caddyfile:6", `sso idp a: require_acr "{env.ACR}": values are literal, a placeholder is not replaced here`}},
		{"scopes placeholder", entraIdP("scopes openid {env.EXTRA_SCOPE}"), []string{"Caddyfile:6", `scopes "{env.EXTRA_SCOPE}": values are literal`}},
		{"default_groups placeholder", entraIdP("default_groups staff {env.GROUP}"), []string{"Caddyfile:6", `default_groups "{env.GROUP}": values are literal`}},
		{"authn_context placeholder", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tauthn_context {env.AUTHN_CONTEXT}\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", `authn_context "{env.AUTHN_CONTEXT}": values are literal`}},
		{"allowed_domains placeholder", entraIdP("allowed_domains {env.ALLOWED_DOMAIN}"), []string{"Caddyfile:6", `"{env.ALLOWED_DOMAIN}" is not a domain name: values are literal, a placeholder is not replaced here`}},
		{"hosted_domain placeholder", entraIdP("hosted_domain {env.GOOGLE_HD}"), []string{"Caddyfile:6", `hosted_domain) "{env.GOOGLE_HD}" is not a domain name: values are literal`}},
		{"identity_jwt audience placeholder", "example.com {\n\tsso {\n\t\tidentity_jwt audience {env.JWT_AUDIENCE}\n\t}\n}\n", []string{"Caddyfile:3", `identity_jwt audience "{env.JWT_AUDIENCE}": values are literal`}},
		// Settings that act only on users JIT creates, without jit: at the
		// block's line, as jit may come after them.
		{"link_by_email without jit", entraIdP("link_by_email"), []string{"Caddyfile:3", "sso idp a: provision: link_by_email acts only on users JIT creates: add jit or drop the line"}},
		{"create_as pending without jit", entraIdP("create_as pending"), []string{"Caddyfile:3", "sso idp a: provision: create_as pending acts only on users JIT creates"}},
		{"optional without jit", entraIdP("optional email"), []string{"Caddyfile:3", "sso idp a: provision: optional acts only on users JIT creates"}},
	})
}

// entraIdP is a global sso option with one Entra IdP (issuer of tenant
// 72f988bf-…, at line 4) and line, at line 6.
func entraIdP(line string) string {
	return "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\n\t\t\tclient_id x\n\t\t\t" + line + "\n\t\t}\n\t}\n}\n"
}

// TestExamplesAdapt keeps every shipped Caddyfile valid: the examples and
// the annotated template must adapt without errors or warnings.
func TestExamplesAdapt(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/Caddyfile")
	files = append(files, "../Caddyfile.example")
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			adapt(t, string(raw))
		})
	}
}

// adaptErrorCase is a Caddyfile that must fail adaptation, and what its
// error must say (the file and line, the directive, the expected form).
type adaptErrorCase struct {
	name, caddyfile string
	want            []string
}

func testAdaptErrors(t *testing.T, cases []adaptErrorCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tt.caddyfile), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatal("adapted without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
