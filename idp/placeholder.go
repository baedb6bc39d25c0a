package idp

import (
	"fmt"
	"strings"
)

// HasPlaceholder reports whether Caddy's replacer would replace part of s:
// a {namespace.name} found by its rules (a \{ or \} is escaped, an
// unclosed { is text), so {env.X} is one and s3cr{t is not. It is the one
// test of "a placeholder" for the packages below caddymodule, which
// import no Caddy (docs/architecture.md); caddymodule holds it to Caddy's
// own replacer (TestHasPlaceholderAsCaddyReplaces).
func HasPlaceholder(s string) bool {
scan:
	for i := 0; i < len(s); i++ { // Caddy's Replacer.replace, finding keys only
		if s[i] != '{' || i > 0 && s[i-1] == '\\' {
			continue
		}
		end := strings.IndexByte(s[i:], '}') + i
		if end < i {
			continue // unclosed
		}
		for end < len(s)-1 && s[end-1] == '\\' { // the first } not escaped closes it
			next := strings.IndexByte(s[end+1:], '}')
			if next < 0 {
				continue scan
			}
			end += next + 1
		}
		if strings.IndexByte(s[i+1:end], '.') > 0 {
			return true
		}
	}
	return false
}

// CheckLiteral refuses a placeholder in the values of a setting that is
// never resolved: it would be used as written ({env.ACR} sent as the ACR,
// a group named {env.GROUP}), and match or grant nothing the operator
// meant. The access rules' words (gateway), with the setting named.
func CheckLiteral(setting string, values ...string) error {
	for _, v := range values {
		if HasPlaceholder(v) {
			return fmt.Errorf("%s %q: values are literal, a placeholder is not replaced here: write the value itself", setting, v)
		}
	}
	return nil
}
