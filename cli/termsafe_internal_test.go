package cli

import "testing"

// TestTermSafe: what would steer the operator's terminal or reorder what
// they read is escaped visibly; letters of any script are left alone.
func TestTermSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Ada Lovelace", "Ada Lovelace"},
		{"Zoë 山田 Ørsted", "Zoë 山田 Ørsted"},
		{`CORP\ada`, `CORP\ada`},
		{"\u00a0nbsp and \u200cZWNJ", "\u00a0nbsp and \u200cZWNJ"},
		{"Eve\x1b]0;pwned\a\x1b[2K", `Eve\x1b]0;pwned\x07\x1b[2K`},
		{"X\nfakeid  root@corp.example", `X\nfakeid  root@corp.example`},
		{"a\rb\tc\x00d\x7fe", `a\rb\tc\x00d\x7fe`},
		{"c1\u0085\u009b", `c1\u0085\u009b`},
		{"bidi\u202egpj.exe\u202c\u2066x\u2069\u200f", `bidi\u202egpj.exe\u202c\u2066x\u2069\u200f`},
		{"line\u2028para\u2029", `line\u2028para\u2029`},
		{"bad\x9b\xffutf8", `bad\x9b\xffutf8`},
		{"real \ufffd", "real \ufffd"},
	} {
		if got := termSafe(tc.in); got != tc.want {
			t.Errorf("termSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestListItems: group names and audit detail values read as one item
// each, whatever separators they hold, and are termSafe.
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
