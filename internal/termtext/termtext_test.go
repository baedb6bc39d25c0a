package termtext

import "testing"

// TestLine: what would steer the operator's terminal or reorder what
// they read is escaped visibly; letters of any script are left alone.
func TestLine(t *testing.T) {
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
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
