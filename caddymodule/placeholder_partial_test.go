package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// validateCaddyfile is `caddy validate` of a Caddyfile: adapt, then
// provision every app without starting one.
func validateCaddyfile(t *testing.T, caddyfile string) error {
	t.Helper()
	raw, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// A placeholder inside a longer value that resolves to nothing is refused
// at validate, named with its setting, as one that is the whole value is
// (review of 2026-12): the README's PingOne issuer became
// https://auth.pingone.eu//as, and Entra's metadata_url loaded the
// tenant's metadata instead of the app's (?appid=), both accepted.
func TestPartialPlaceholderUnset(t *testing.T) {
	dir := t.TempDir()
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	kp, err := saml.GenerateKeyPair("sp.test")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := saml.EncodeKeyPairPEM(kp)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "sp.pem"), pem, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	global := func(store, idp string) string {
		return "{\n\tsso {\n\t\tstore bolt " + store + "\n\t\t" + idp + "\n\t}\n}\n"
	}
	tests := []struct {
		name, caddyfile string
		env, value      string // the variable the row unsets, then sets to value
		want            []string
	}{
		{"pingone issuer", global(dir+"/a.db", "idp pingone oidc {\n\t\t\tpreset pingone\n\t\t\tissuer https://auth.pingone.eu/{env.PINGONE_ENV_ID}/as\n\t\t\tclient_id abc\n\t\t}"),
			"PINGONE_ENV_ID", "0b7a4c1e-3d5f-4a8b-9c2d-1e6f7a8b9c0d",
			[]string{"sso idp pingone", "issuer {env.PINGONE_ENV_ID} is empty", "is the variable set in Caddy's environment?"}},
		{"entra saml metadata_url", global(dir+"/b.db", "idp entra saml {\n\t\t\tpreset entra\n\t\t\tmetadata_url https://login.microsoftonline.com/t/federationmetadata/2007-06/federationmetadata.xml?appid={env.ENTRA_APP_ID}\n\t\t}"),
			"ENTRA_APP_ID", "abc",
			[]string{"sso idp entra", "metadata_url {env.ENTRA_APP_ID} is empty", "is the variable set in Caddy's environment?"}},
		// sp_cert's files are resolved as metadata_file is (review 33): the
		// path was read as /sp.pem, a file that does not exist.
		{"sp_cert directory", global(dir+"/c.db", "idp s saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tsp_cert {env.SP_DIR}/sp.pem {env.SP_DIR}/sp.pem\n\t\t}"),
			"SP_DIR", dir,
			[]string{"sso idp s", "sp_cert {env.SP_DIR} is empty", "is the variable set in Caddy's environment?"}},
		// The key's path alone unset: named too, not read as /sp.pem.
		{"sp_cert key directory", global(dir+"/sp-key.db", "idp s saml {\n\t\t\tmetadata_url https://idp.example.com/md\n\t\t\tsp_cert "+dir+"/sp.pem {env.SP_KEY_DIR}/sp.pem\n\t\t}"),
			"SP_KEY_DIR", dir,
			[]string{"sso idp s", "sp_cert {env.SP_KEY_DIR} is empty", "is the variable set in Caddy's environment?"}},
		// A file read empty names the file, not the environment.
		{"file in the store path", global(dir+"/{file."+emptyFile+"}.db", "idp okta oidc {\n\t\t\tissuer https://example.okta.com\n\t\t\tclient_id abc\n\t\t}"),
			"", "",
			[]string{"store bolt {file." + emptyFile + "} is empty", "is the file there"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(tt.env, "")
				os.Unsetenv(tt.env) // unset, not empty: as an operator forgets it
			}
			err := validateCaddyfile(t, tt.caddyfile)
			if err == nil {
				t.Fatal("validate accepted it")
			}
			t.Logf("refused: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tt.env == "" {
				return
			}
			t.Setenv(tt.env, tt.value)
			if err := validateCaddyfile(t, tt.caddyfile); err != nil {
				t.Errorf("with %s set, validate refused it: %v", tt.env, err)
			}
		})
	}
}

// Placeholders Caddy knows only in a request ({http.…}) stay as written,
// beside resolved ones, as before.
func TestResolveKeepsRequestPlaceholders(t *testing.T) {
	t.Setenv("CADDY_SSO_TEST_SET", "x")
	const raw = "https://{http.request.host}/sp/{env.CADDY_SSO_TEST_SET}"
	v, err := resolve(caddy.NewReplacer(), "entity_id", raw, false)
	if want := "https://{http.request.host}/sp/x"; err != nil || v != want {
		t.Errorf("resolve(%s) = %q, %v; want %q", raw, v, err, want)
	}
}
