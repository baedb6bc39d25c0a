package check

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/idpcheck"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// TestPrintLayout: what an operator reads: each finding marked by its
// level (✓ ok, i info, ! warning, ✗ error), the values to enter even when
// there is one, the claims of an OpenID Connect IdP and the attributes of
// a SAML one under their own heading, and the summary line with the
// errors and the warnings each in its place.
func TestPrintLayout(t *testing.T) {
	r := &Report{
		Config:   "Caddyfile",
		Problems: []Finding{{Level: idpcheck.Error, Message: "server srv0: a problem"}},
		IdPs: []*IdPCheck{{
			Name: "corp", Protocol: idp.ProtocolOIDC, Preset: "entra",
			Checks: []Finding{
				{Level: idpcheck.OK, Message: "fine"},
				{Level: idpcheck.Info, Message: "worth knowing"},
				{Level: idpcheck.Warn, Message: "look at this"},
			},
			Values: []Value{{Field: "Redirect URI", Value: "https://app.example.com/.sso/oidc/corp/callback"}},
			Claims: []ClaimNames{{Attribute: mapping.UniqueUserID, Names: []string{"oid", mapping.Subject}},
				{Attribute: mapping.Groups, Names: []string{"groups", "roles"}, Union: true}},
		}, {
			Name: "partner", Protocol: idp.ProtocolSAML, Preset: "okta",
			Claims: []ClaimNames{{Attribute: mapping.UniqueUserID, Names: []string{mapping.NameID}}},
		}},
		Errors: 2, Warnings: 1,
	}
	var b strings.Builder
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"caddy-sso check: Caddyfile\n  ✗ server srv0: a problem\n",
		"\nIdP corp (oidc, preset entra)\n  ✓ fine\n  i worth knowing\n  ! look at this\n",
		"  Enter at the IdP:\n    Redirect URI  https://app.example.com/.sso/oidc/corp/callback\n",
		"  Claims to map (the first one present is used):\n    uniqueUserId  oid, sub\n",
		// An operator's `map groups` reads every claim it names.
		"    groups        groups, roles (all of them: their union)\n",
		"\nIdP partner (saml, preset okta)\n  Attributes to send (the first one present is used):\n    uniqueUserId  NameID (persistent)\n",
		"\n2 IdP(s): 2 error(s), 1 warning(s)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Enter at the IdP:") != 1 {
		t.Errorf("an IdP without values has an \"Enter at the IdP\" heading:\n%s", out)
	}
}
