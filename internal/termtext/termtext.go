// Package termtext makes text from identity providers and SCIM clients
// safe to print on an operator's terminal: the caddy sso tables (cli) and
// the caddy sso check report (check) print names, groups, claim names and
// the IdPs' own metadata, any of which may hold what a terminal obeys.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line makes s safe to print on an operator's terminal line. Much of
// what a command prints comes from identity providers and SCIM clients
// (names, emails, groups, claim names in audit details), and a raw
// control character in it would be obeyed by the terminal: ESC sequences
// set the title, move the cursor or erase lines, and a newline starts a
// forged table row. So it escapes, Go-style and visibly, C0 controls, DEL
// and C1 controls (\x1b, \n, \u009b), Unicode bidi controls (\u202e),
// which reorder what the operator reads, line and paragraph separators,
// and bytes that are not UTF-8 (\xff), which a terminal in an 8-bit mode
// may take for C1 controls. Ordinary letters of any script (Zoë, 山田) and
// joiners that scripts need are left as they are. Backslashes are kept
// too, so that DOMAIN\user reads as it is: this is for safety, not a
// reversible encoding; --json prints values exactly.
func Line(s string) string {
	var b *strings.Builder // nil until something needs escaping
	for i := 0; i < len(s); {
		esc, n := escape(s[i:])
		if esc != "" && b == nil {
			b = new(strings.Builder)
			b.Grow(len(s) + 8)
			b.WriteString(s[:i])
		}
		if b != nil {
			if esc == "" {
				esc = s[i : i+n]
			}
			b.WriteString(esc)
		}
		i += n
	}
	if b == nil {
		return s // the common case: nothing to escape, nothing allocated
	}
	return b.String()
}

// escape decodes the first rune of s and returns what Line prints
// for it, "" for the rune itself, and its length in bytes.
func escape(s string) (string, int) {
	r, n := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && n == 1: // not UTF-8
		return fmt.Sprintf(`\x%02x`, s[0]), n
	case r == '\n':
		return `\n`, n
	case r == '\r':
		return `\r`, n
	case r == '\t':
		return `\t`, n
	case !unicode.IsControl(r) && !unicode.Is(unicode.Bidi_Control, r) && r != '\u2028' && r != '\u2029':
		return "", n
	case r < utf8.RuneSelf:
		return fmt.Sprintf(`\x%02x`, r), n
	}
	return fmt.Sprintf(`\u%04x`, r), n
}
