package mapping

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestAbsentGroupsPerPreset: the entra and okta presets read an absent
// groups attribute as "no groups" (those products omit it for a user in no
// group they send), unless an overage marker stands in for the groups;
// generic and pingone read it as saying nothing. A `map groups` override
// keeps the preset's reading.
func TestAbsentGroupsPerPreset(t *testing.T) {
	for _, tt := range []struct {
		preset, protocol string
		overrides        map[string][]string
		attrs            map[string][]string
		hasGroups        bool
	}{
		{"okta", idp.ProtocolSAML, nil, nil, true},
		{"okta", idp.ProtocolOIDC, nil, nil, true},
		{"okta", idp.ProtocolOIDC, map[string][]string{Groups: {"roles"}}, nil, true},
		{"entra", idp.ProtocolSAML, nil, nil, true},
		{"entra", idp.ProtocolOIDC, nil, nil, true},
		{"entra", idp.ProtocolSAML, nil, map[string][]string{EntraGroupsLink: {"https://graph…"}}, false},
		{"entra", idp.ProtocolOIDC, nil, map[string][]string{OIDCClaimNames: {`{"groups":"src1"}`}}, false},
		{"entra", idp.ProtocolOIDC, nil, map[string][]string{EntraHasGroups: {"true"}}, false},
		{"okta", idp.ProtocolOIDC, nil, map[string][]string{OIDCClaimNames: {`{"groups":"src1"}`}}, false},
		{"generic", idp.ProtocolSAML, nil, nil, false},
		{"generic", idp.ProtocolOIDC, nil, nil, false},
		{"pingone", idp.ProtocolSAML, nil, nil, false},
		{"pingone", idp.ProtocolOIDC, nil, nil, false},
	} {
		m, err := New(tt.preset, tt.protocol, tt.overrides)
		if err != nil {
			t.Fatal(err)
		}
		attrs := map[string][]string{UniqueUserID: {"id"}}
		for k, v := range tt.attrs {
			attrs[k] = v
		}
		p, err := m.Map(&idp.Assertion{Protocol: tt.protocol, Subject: "id", Attributes: attrs})
		if err != nil {
			t.Fatal(err)
		}
		if p.HasGroups != tt.hasGroups || p.Groups != nil {
			t.Errorf("%s %s %v %v: Groups=%q HasGroups=%v, want none and %v",
				tt.preset, tt.protocol, tt.overrides, tt.attrs, p.Groups, p.HasGroups, tt.hasGroups)
		}
	}
}
