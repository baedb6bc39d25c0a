package idp

import (
	"fmt"
	"strings"
	"unicode"
)

// CheckName is the rule for an IdP's name, which is a segment of the IdP's
// endpoint paths (/.sso/oidc/<name>/callback): non-empty, not . or ..
// (which a URL path resolves away), and without /, \, ?, #, %, white space
// or control characters.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsFunc(name, func(r rune) bool {
		return strings.ContainsRune("/?#%\\", r) || unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return fmt.Errorf("name %q must be usable as a URL path segment: non-empty, not . or .., without /, \\, ?, #, %%, spaces or control characters (such as okta, entra-prod, corp_saml)", name)
	}
	return nil
}
