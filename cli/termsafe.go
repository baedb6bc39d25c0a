package cli

import (
	"strconv"
	"strings"

	"github.com/caddy-sso/caddy-sso/internal/termtext"
)

// quoteIf renders one item of a list that the CLI prints separated by
// one of seps: as it is (escaped by termtext.Line) when that reads unambiguously,
// else Go-quoted, so that a group "a, b" does not read as two groups,
// a detail value "x by=admin" does not forge a pair, and edge white space
// and the empty string stay visible.
func quoteIf(s, seps string) string {
	if s == "" || strings.ContainsAny(s, seps+`"`) || strings.TrimSpace(s) != s {
		return strconv.Quote(s)
	}
	return termtext.Line(s)
}
