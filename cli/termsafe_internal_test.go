package cli

import "testing"

// TestListItems: group names and audit detail values read as one item
// each, whatever separators they hold, and are escaped (termtext.Line).
func TestListItems(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"groups", groupList([]string{"eng", "Domain Admins", "山田"}), "eng, Domain Admins, 山田"},
		{"group with a comma", groupList([]string{"a, b", "c"}), `"a, b", c`},
		{"groups with edges and quotes", groupList([]string{" a", "", `say "hi"`}), `" a", "", "say \"hi\""`},
		{"group with an escape", groupList([]string{"x\x1b[2K"}), `x\x1b[2K`},
		{"no groups", groupList(nil), ""},
		{"details", detail(map[string]string{"received": "sub,email", "by": "admin"}), "by=admin received=sub,email"},
		{"forged pair", detail(map[string]string{"received": "x by=admin"}), `received="x by=admin"`},
		{"escape in a detail", detail(map[string]string{"received": "a\nb", "k\x1b": "v"}), `k\x1b=v received=a\nb`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
