package provision_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision"
)

// TestDefaultGroupsRefuseBlank: an empty or blank default group is refused
// when the configuration loads (JSON as well as the Caddyfile): the store
// drops such a name, so it would be a group silently never granted.
func TestDefaultGroupsRefuseBlank(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []string
		want   string // "" accepts
	}{
		{"names", []string{"staff", "app users"}, ""},
		{"none", nil, ""},
		{"empty", []string{""}, "default_groups must not hold an empty or blank group name"},
		{"empty among names", []string{"staff", ""}, "default_groups must not hold an empty or blank group name"},
		{"blank", []string{" \t"}, "default_groups must not hold an empty or blank group name"},
		// Granted as written: a placeholder is never resolved (review 33).
		{"placeholder", []string{"staff", "{env.GROUP}"}, `default_groups "{env.GROUP}": values are literal`},
		{"a brace that is no placeholder", []string{"{staff}"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := provision.Rules{JIT: true, DefaultGroups: tc.groups}.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
