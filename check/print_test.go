package check

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/idpcheck"
)

// TestPrintEscapesIdPText: what the report quotes from an IdP (a finding
// that names a metadata value, a value to enter) reaches the operator's
// terminal escaped: no escape sequence, no forged line.
func TestPrintEscapesIdPText(t *testing.T) {
	r := &Report{Config: "Caddyfile", IdPs: []*IdPCheck{{
		Name: "okta", Protocol: idp.ProtocolSAML, Preset: "okta",
		Checks: []Finding{{Level: idpcheck.Warn, Message: "entity ID \"x\x1b]0;pwned\a\x1b[2K\"\n  ✓ all good"}},
		Values: []Value{{Field: "ACS URL", Value: "https://app.example/\u202eevil"}},
	}}}
	var b strings.Builder
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\a\u202e") || strings.Contains(out, "\n  ✓ all good") {
		t.Errorf("the report printed IdP text raw:\n%q", out)
	}
	for _, want := range []string{`\x1b]0;pwned\x07`, `\n  ✓ all good`, `\u202eevil`} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks the escaped %s:\n%s", want, out)
		}
	}
}
