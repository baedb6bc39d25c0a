package check

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// TestClaimName: the report says "persistent" only where the mapper
// requires it, for the user ID.
func TestClaimName(t *testing.T) {
	for _, tc := range []struct{ protocol, attr, name, want string }{
		{idp.ProtocolOIDC, mapping.UniqueUserID, mapping.Subject, "sub"},
		{idp.ProtocolSAML, mapping.UniqueUserID, mapping.Subject, "NameID (persistent)"},
		{idp.ProtocolSAML, mapping.UniqueUserID, mapping.NameID, "NameID (persistent)"},
		{idp.ProtocolSAML, "email", mapping.NameID, "NameID"},
		{idp.ProtocolSAML, "email", "mail", "mail"},
	} {
		if got := claimName(tc.protocol, tc.attr, tc.name); got != tc.want {
			t.Errorf("claimName(%s, %s, %s) = %q, want %q", tc.protocol, tc.attr, tc.name, got, tc.want)
		}
	}
}
