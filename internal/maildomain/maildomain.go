// Package maildomain holds the rule for an email domain a configuration
// lists: provision's allowed_domains, the routes' allow and deny domain
// rules (gateway) and an OIDC IdP's hosted_domain (idp/oidc). It lives
// below all three so that a spelling one accepts or matches cannot be
// refused or missed by another.
package maildomain

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Canon is the form email domains are compared in: one rule, so a
// spelling that passes one list cannot escape another. It is lower-cased
// and NFC, then IDNA ToASCII (UTS #46 lookup mapping), so that
// "Bücher.example", a decomposed "bu\u0308cher.example" and
// "xn--bcher-kva.example" are one domain, as is "example.com." (the
// root's dot) with "example.com". ToASCII's "ß" stays distinct from "ss":
// those are two domains. A name ToASCII refuses (an underscore, say) is
// compared in the lower-cased NFC form, as it was before IDNA: both sides
// go through this function, so whatever matched under plain lower-casing
// still does.
func Canon(d string) string {
	d = norm.NFC.String(strings.ToLower(strings.TrimSuffix(d, ".")))
	if a, err := idna.Lookup.ToASCII(d); err == nil && a != "" {
		return strings.ToLower(a)
	}
	return d
}

// Bare is the domain an entry Check accepted names, as the operator wrote
// it: without its surrounding spaces, the one leading "@" Check allows, or
// the root's dot. Compare it in Canon's form; send it to a party that
// expects a domain as written (OIDC's hd).
func Bare(entry string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(entry), "@"), ".")
}

// Check is the rule for an email domain a configuration lists: matching
// is exact, so a pattern ("*.example.com"), a URL or an address would be
// accepted and then match no one (an allow-list that refuses everyone, a
// deny rule that denies nobody): it is refused now. One leading "@" is
// allowed, as "@example.com" is how the domain is often written; it is
// dropped before matching (Bare). Surrounding spaces are allowed and
// dropped: a JSON list may have them.
//
// A brace is refused with its own words too: a placeholder is never
// resolved in a domain list. A comma or semicolon is refused with its own words: a list written
// "a.example, b.example" would otherwise be the domain "a.example,",
// which no email has (an allow-list that refuses a.example's users, a
// deny rule that denies nobody there). Values are separated by spaces.
func Check(entry string) error {
	d := strings.TrimPrefix(strings.TrimSpace(entry), "@")
	if strings.ContainsAny(d, ListSeparators) {
		return fmt.Errorf("%q is not a domain name: %s", entry, SeparateWithSpaces)
	}
	// No domain has a brace; {env.DOMAIN} is a placeholder, which no
	// setting that lists domains resolves: it would be matched as written.
	if strings.ContainsAny(d, "{}") {
		return fmt.Errorf("%q is not a domain name: values are literal, a placeholder is not replaced here: write the domain itself", entry)
	}
	if strings.TrimSuffix(d, ".") == "" || strings.ContainsAny(d, "*/:@") || strings.ContainsFunc(d, unicode.IsSpace) {
		return fmt.Errorf("%q is not a domain name: write each domain exactly as it "+
			"follows the @ (no wildcard, URL, port or address), and list each subdomain on its own", entry)
	}
	return nil
}

// ListSeparators are what a list written in another syntax separates its
// values with; no domain or email a configuration lists has one.
const ListSeparators = ",;"

// SeparateWithSpaces is the fix for a value with a ListSeparators.
const SeparateWithSpaces = "separate values with spaces, not commas"
