package provision_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision"
)

// TestJITOnlySettingsNeedJIT: optional, create_as pending and link_by_email
// act only on a user JIT creates (without jit an unknown subject is
// refused jit_disabled before any is read), so without jit they are
// refused, not kept as lines that silently do nothing (review 33).
func TestJITOnlySettingsNeedJIT(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules provision.Rules
		want  string // "" accepts
	}{
		{"none", provision.Rules{}, ""},
		{"all, with jit", provision.Rules{JIT: true, Optional: []string{"email"}, CreatePending: true, LinkByEmail: true}, ""},
		{"default_groups without jit", provision.Rules{DefaultGroups: []string{"staff"}}, ""}, // kept on the users JIT made before jit went off
		{"optional", provision.Rules{Optional: []string{"email"}}, "optional acts only on users JIT creates: add jit or drop the line"},
		{"create_as pending", provision.Rules{CreatePending: true}, "create_as pending acts only on users JIT creates"},
		{"link_by_email", provision.Rules{LinkByEmail: true}, "link_by_email acts only on users JIT creates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rules.CheckJIT()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckJIT = %v, want %q", err, tc.want)
			}
		})
	}
}
