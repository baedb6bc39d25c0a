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
// TestCaddyfileErrors name (scimGlobal is 9 lines, scimGlobal2 13).
const (
	scimGlobal  = "{\n\tsso {\n\t\tidp entra oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t\tscim\n\t\t}\n\t}\n}\n"
	scimGlobal2 = "{\n\tsso {\n\t\tidp entra oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t\tscim\n\t\t}\n\t\tidp okta oidc {\n\t\t\tissuer https://okta.example.com\n\t\t\tclient_id y\n\t\t\tscim\n\t\t}\n\t}\n}\n"
)

// TestCaddyfileErrors checks that bad configs fail at adaptation with the
// directive, the line and a message that says what is expected.
func TestCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, caddyfile string
		want            []string
	}{
		{"unknown setting", "{\n\tsso {\n\t\tstorage x\n\t}\n}\n", []string{"Caddyfile:3", `unknown setting "storage"`}},
		{"bad store", "{\n\tsso {\n\t\tstore sqlite /x\n\t}\n}\n", []string{"Caddyfile:3", "store bolt <path>"}},
		{"bad duration", "{\n\tsso {\n\t\tsession {\n\t\t\tlifetime soon\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "lifetime", "not a positive duration"}},
		{"unknown protocol", "{\n\tsso {\n\t\tidp a ldap {\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", `unknown protocol "ldap"`}},
		{"unknown preset", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tpreset azure\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso idp a", `unknown preset "azure"`, "entra"}},
		{"missing issuer", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "sso idp a", "needs issuer"}},
		{"bad update", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tupdate sometimes\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", `unknown update "sometimes"`, "force, import"}},
		{"bad optional", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\toptional uniqueUserId\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "optional attribute"}},
		{"jit takes no value", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tjit yes\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "jit takes no value"}},
		{"duplicate idp", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tissuer https://a\n\t\t\tclient_id x\n\t\t}\n\t\tidp a oidc {\n\t\t\tissuer https://a\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:", `"a" is defined twice`}},
		{"saml without metadata", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tjit\n\t\t}\n\t}\n}\n", []string{"Caddyfile:3", "sso idp a", "metadata_url, metadata_file or metadata"}},
		{"saml two metadata sources", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tmetadata_file /etc/md.xml\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", "metadata_file", "already given"}},
		{"saml plain http metadata", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url http://idp.example.com/md\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sso idp a", "must be https"}},
		{"saml inline metadata not xml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata /etc/md.xml\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "metadata_file"}},
		{"saml bad binding", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\trequest_binding artifact\n\t\t}\n\t}\n}\n", []string{"Caddyfile:5", `unknown request_binding "artifact"`, "redirect, post"}},
		{"saml sp_cert one file", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tsp_cert /etc/sp.pem\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "sp_cert <certificate file> <key file>"}},
		{"saml three sp_certs", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tsp_cert a.crt a.key\n\t\t\tsp_cert b.crt b.key\n\t\t\tsp_cert c.crt c.key\n\t\t}\n\t}\n}\n", []string{"Caddyfile:6", "sp_cert may appear at most 2 times"}},
		{"saml clock skew too large", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tclock_skew 10m\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "clock_skew", "exceeds the maximum of 3m0s"}},
		{"saml bad size", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmax_response_size 1GB\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", `max_response_size "1GB"`, "between 16 KiB and 16 MiB"}},
		{"saml flag takes no value", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tidp_initiated yes\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "idp_initiated takes no value"}},
		{"oidc setting in saml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "client_id is an oidc setting"}},
		{"saml setting in oidc", "{\n\tsso {\n\t\tidp a oidc {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "metadata_url is a saml setting"}},
		{"handler unknown setting", "example.com {\n\tsso {\n\t\tcookie x\n\t}\n}\n", []string{"Caddyfile:3", `sso: unknown setting "cookie"`}},
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
		{"handler bearer takes no value", "example.com {\n\tsso {\n\t\tset_authorization_header yes\n\t}\n}\n", []string{"Caddyfile:3", "set_authorization_header: takes no value"}},
		{"handler same header for both tokens", "example.com {\n\tsso {\n\t\tpass_access_token X-T\n\t\tpass_id_token x-t\n\t}\n}\n", []string{"Caddyfile:", "two header names"}},
		{"handler tokens from saml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t}\n\t}\n}\n\nexample.com {\n\tsso a {\n\t\tpass_access_token\n\t}\n}\n", []string{"Caddyfile:10", `IdP "a" is saml`, "only OpenID Connect"}},
		{"offline_access in saml", "{\n\tsso {\n\t\tidp a saml {\n\t\t\toffline_access\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "offline_access is an oidc setting"}},
		{"handler unknown mode", "example.com {\n\tsso {\n\t\tmode verify\n\t}\n}\n", []string{"Caddyfile:", `unknown mode "verify"`, "auth_request or forward_auth"}},
		{"handler mode without value", "example.com {\n\tsso {\n\t\tmode\n\t}\n}\n", []string{"Caddyfile:3", "sso mode: expected protect, auth_request or forward_auth"}},
		{"pages_dir without value", "{\n\tsso {\n\t\tpages_dir\n\t}\n}\n", []string{"Caddyfile:3"}},
		{"negative audit retention", "{\n\tsso {\n\t\taudit_retention -1h\n\t}\n}\n", []string{"Caddyfile:3", "audit_retention", "0 keeps every event"}},
		{"zero sessions per user", "{\n\tsso {\n\t\tsession {\n\t\t\tmax_sessions_per_user 0\n\t\t}\n\t}\n}\n", []string{"Caddyfile:4", "max_sessions_per_user", "not a positive number"}},
		// sso_scim: after scimGlobal (9 lines) the site starts on line 10.
		{"scim no idp", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tbase_path /scim/v2\n\t}\n}\n", []string{"Caddyfile:13", "sso_scim: at least one idp <name> <token> is required"}},
		{"scim idp without token", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim idp: expected: idp <name> <token>"}},
		{"scim unknown idp", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp okta {env.SCIM_TOKEN_OKTA}\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim idp okta", "no identity provider by that name in the global sso option (defined: entra)"}},
		{"scim idp not marked", "{\n\tsso {\n\t\tidp entra oidc {\n\t\t\tissuer https://login.example.com\n\t\t\tclient_id x\n\t\t}\n\t}\n}\n\nscim.example.com {\n\tsso_scim {\n\t\tidp entra {env.SCIM_TOKEN_ENTRA}\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim idp entra", "add the line `scim`"}},
		{"scim without global sso", "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.SCIM_TOKEN_ENTRA}\n\t}\n}\n", []string{"Caddyfile:3", "sso_scim idp entra", "no global sso option"}},
		{"scim idp twice", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.A}\n\t\tidp entra {env.B}\n\t}\n}\n", []string{"Caddyfile:13", "idp entra is listed twice"}},
		{"scim short literal token", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra hunter2\n\t}\n}\n", []string{"Caddyfile:12", "sso_scim: idp entra", "at least 16 characters"}},
		{"scim shared literal token", scimGlobal2 + "scim.example.com {\n\tsso_scim {\n\t\tidp entra 0123456789abcdefXYZ\n\t\tidp okta 0123456789abcdefXYZ\n\t}\n}\n", []string{"Caddyfile:", "share a bearer token"}},
		{"scim argument", scimGlobal + "scim.example.com {\n\tsso_scim entra {\n\t}\n}\n", []string{"Caddyfile:11", "sso_scim: expected: sso_scim { idp <name> <token>"}},
		{"scim unknown setting", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tpath /scim\n\t}\n}\n", []string{"Caddyfile:13", `sso_scim: unknown setting "path"`, "base_path"}},
		{"scim relative base_path", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tbase_path scim/v2\n\t}\n}\n", []string{"Caddyfile:13", `base_path "scim/v2" must start with /`}},
		{"scim bad base_url", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tbase_url scim.example.com/scim\n\t}\n}\n", []string{"Caddyfile:13", "base_url", "not an absolute http(s) URL"}},
		{"scim bad body size", scimGlobal + "scim.example.com {\n\tsso_scim {\n\t\tidp entra {env.T}\n\t\tmax_body_size lots\n\t}\n}\n", []string{"Caddyfile:13", `max_body_size: "lots"`}},
	}
	for _, tt := range tests {
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
