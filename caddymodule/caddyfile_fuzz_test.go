package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sso/caddy-sso/caddymodule"
)

// FuzzCaddyfile adapts arbitrary Caddyfiles, seeded with every Caddyfile
// of the repository (golden files, examples, the annotated template), so
// that mutations land in the sso global option and the sso and sso_scim
// directives. Properties:
//   - adaptation never panics;
//   - an accepted config is JSON whose sso app and sso/sso_scim handlers
//     unmarshal strictly (unknown fields refused, as Caddy loads modules)
//     into the module structs, pass their Validate, and encode back to the
//     same JSON after one round (nothing the adapter writes is lost or
//     renamed on the way into the module).
//
// An input that may hold Caddy's import directive is skipped
// (importDirective); no seed does, so the seed run checks them all.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed.input)
	}

	f.Fuzz(func(t *testing.T, input string) {
		if importDirective(input) {
			t.Skip()
		}
		cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
		if err != nil {
			return
		}
		var root struct {
			Apps map[string]json.RawMessage `json:"apps"`
		}
		if err := json.Unmarshal(cfg, &root); err != nil {
			t.Fatalf("adapted config is not JSON: %v\n%s", err, cfg)
		}
		if raw, ok := root.Apps["sso"]; ok {
			checkModule(t, raw, new(caddymodule.App), func() any { return new(caddymodule.App) })
		}
		if raw, ok := root.Apps["http"]; ok {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			walkHandlers(t, v)
		}
	})
}

// fuzzSeed is one Caddyfile of the repository, its input part only.
type fuzzSeed struct{ file, input string }

// fuzzSeeds reads every Caddyfile of the repository: the golden files
// (the part before their "----------"), the examples and the template.
func fuzzSeeds(tb testing.TB) []fuzzSeed {
	tb.Helper()
	var files []string
	for _, pattern := range []string{"testdata/caddyfile_adapt/*.caddyfiletest", "../examples/*/Caddyfile", "../Caddyfile.example"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		tb.Fatalf("found only %d Caddyfiles to seed from", len(files))
	}
	seeds := make([]fuzzSeed, 0, len(files))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		input, _, _ := strings.Cut(string(raw), "----------")
		seeds = append(seeds, fuzzSeed{file, input})
	}
	return seeds
}

// importDirective reports whether Caddy's parser may take part of the
// Caddyfile for its import directive, which reads the files (or devices)
// it names: that is Caddy's business, not the sso blocks', and a fuzzer
// would find /dev/zero. The parser expands a token "import" first on its
// line or, in a site block, right after the "{" on the same line; an
// environment placeholder ({$NAME:default}) is replaced before lexing and
// may spell one, so any input with one counts too. The word elsewhere (an
// option's value such as "update import", a comment) is no directive.
func importDirective(input string) bool {
	if strings.Contains(input, "{$") {
		return true
	}
	tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
	if err != nil {
		return false // Caddy's own lexing fails the same way, before any import
	}
	for i, tok := range tokens {
		if tok.Text == "import" && (i == 0 || tok.Line != tokens[i-1].Line || tokens[i-1].Text == "{") {
			return true
		}
	}
	return false
}

// TestFuzzSeedsAreNotSkipped: no Caddyfile of the repository uses the
// import directive, so FuzzCaddyfile's seed run checks every one, the
// fullest ones too (oidc_full and saml_full say "update import", some
// examples say "import" in a comment).
func TestFuzzSeedsAreNotSkipped(t *testing.T) {
	for _, seed := range fuzzSeeds(t) {
		if importDirective(seed.input) {
			t.Errorf("%s: FuzzCaddyfile skips it as if it used the import directive", seed.file)
		}
	}
}

func TestImportDirective(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  bool
	}{
		{"import common\n", true},
		{"{\n\timport /dev/zero\n}\n", true},
		{"example.com {\n\troute {\n\t\timport snip\n\t}\n}\n", true},
		{"example.com { import /dev/zero\n}\n", true},
		{"example.com {\n\t\"import\" /dev/zero\n}\n", true},
		{"{\n\tsso {\n\t\tidp x {\n\t\t\tupdate import\n\t\t}\n\t}\n}\n", false},
		{"# import the certificate\nexample.com {\n}\n", false},
		{"example.com {\n\trespond \"import\"\n}\n", false},
		{"example.com {\n\timports x\n}\n", false},
		{"{$NAME:import} /dev/zero\n", true},
		{"imp{$NAME:ort} /dev/zero\n", true},
	} {
		if got := importDirective(tc.input); got != tc.want {
			t.Errorf("importDirective(%q) = %v, want %v", tc.input, got, tc.want)
		}
	}
}

// walkHandlers finds every sso and sso_scim handler in the http app,
// subroutes included, and checks it.
func walkHandlers(t *testing.T, v any) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			walkHandlers(t, e)
		}
	case map[string]any:
		if name, _ := v["handler"].(string); name == "sso" || name == "sso_scim" {
			// Caddy removes the module name key before unmarshalling.
			m := make(map[string]any, len(v))
			for k, x := range v {
				if k != "handler" {
					m[k] = x
				}
			}
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if name == "sso" {
				checkModule(t, raw, new(caddymodule.Handler), func() any { return new(caddymodule.Handler) })
			} else {
				checkModule(t, raw, new(caddymodule.SCIMHandler), func() any { return new(caddymodule.SCIMHandler) })
			}
			return
		}
		for _, e := range v {
			walkHandlers(t, e)
		}
	}
}

func checkModule(t *testing.T, raw []byte, mod any, fresh func() any) {
	t.Helper()
	if err := caddy.StrictUnmarshalJSON(raw, mod); err != nil {
		t.Fatalf("adapted %T does not load: %v\n%s", mod, err, raw)
	}
	if v, ok := mod.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			t.Fatalf("adapted %T is invalid: %v\n%s", mod, err, raw)
		}
	}
	once, err := json.Marshal(mod)
	if err != nil {
		t.Fatalf("%T does not encode: %v", mod, err)
	}
	again := fresh()
	if err := caddy.StrictUnmarshalJSON(once, again); err != nil {
		t.Fatalf("re-encoded %T does not load: %v\n%s", mod, err, once)
	}
	twice, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatalf("%T changes on a round trip:\n%s\n%s", mod, once, twice)
	}
	if !jsonEqual(t, raw, once) {
		t.Fatalf("%T loses or renames what the adapter wrote:\nadapted: %s\nloaded:  %s", mod, raw, once)
	}
}

// jsonEqual compares two JSON documents as values.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
