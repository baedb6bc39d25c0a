package maildomain_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/maildomain"
)

// TestOneDomainRule: what Check accepts, the domain Bare makes of it (the
// hd an OIDC request sends), and the Canon form every list compares in.
// "." and "@" name no domain: Bare would make them "", an hd no account
// has, or a domain rule that matches no email.
func TestOneDomainRule(t *testing.T) {
	for _, tc := range []struct {
		entry, bare, canon string // bare "": Check refuses entry
	}{
		{"example.com", "example.com", "example.com"},
		{" @Example.COM. ", "Example.COM", "example.com"},
		{"bücher.example", "bücher.example", "xn--bcher-kva.example"},
		{"bu\u0308cher.example", "bu\u0308cher.example", "xn--bcher-kva.example"},
		{"straße.example", "straße.example", "xn--strae-oqa.example"},
		// A name IDNA refuses (an underscore) is still compared lower-cased
		// and in NFC: Canon's own steps, not ToASCII's mapping.
		{"Mail_Relay.Example", "Mail_Relay.Example", "mail_relay.example"},
		{"Bu\u0308cher_Relay.example", "Bu\u0308cher_Relay.example", "b\u00fccher_relay.example"},
		{"example.com,", "", ""},
		{"a.example;b.example", "", ""},
		{"*.example.com", "", ""},
		{"https://example.com", "", ""},
		{"example.com:443", "", ""},
		{"example.com/mail", "", ""},
		{"ada@example.com", "", ""},
		{"exa mple.com", "", ""},
		{"@", "", ""},
		{".", "", ""},
		{" ", "", ""},
		{"{env.DOMAIN}", "", ""},
		{"{env.DOMAIN}.example", "", ""},
		// Either brace alone is no domain's either.
		{"{example.com", "", ""},
		{"example.com}", "", ""},
		// One "@" is how a domain is written; a second is a typo that
		// Bare would keep ("@example.com"), a domain no email has.
		{"@@example.com", "", ""},
		// Any space, not only the ASCII one: a tab from JSON, a no-break
		// space pasted from a document.
		{"exa\tmple.com", "", ""},
		{"exa\u00a0mple.com", "", ""},
	} {
		err := maildomain.Check(tc.entry)
		if (err == nil) != (tc.bare != "") {
			t.Errorf("Check(%q) = %v, want refused: %v", tc.entry, err, tc.bare == "")
			continue
		}
		if err != nil {
			continue
		}
		if got := maildomain.Bare(tc.entry); got != tc.bare {
			t.Errorf("Bare(%q) = %q, want %q", tc.entry, got, tc.bare)
		}
		if got := maildomain.Canon(maildomain.Bare(tc.entry)); got != tc.canon {
			t.Errorf("Canon(Bare(%q)) = %q, want %q", tc.entry, got, tc.canon)
		}
	}
}

// TestCanonOfAReceivedDomain: the domains Canon is given without Bare (an
// email's domain, an ID token's hd) compare as the configured ones do,
// the root's dot and case aside, so "ada@Example.COM." is allowed_domains
// example.com's.
func TestCanonOfAReceivedDomain(t *testing.T) {
	for _, tc := range []struct{ received, canon string }{
		{"Example.COM.", "example.com"},
		{"xn--bcher-kva.example.", "xn--bcher-kva.example"},
		{"Mail_Relay.Example.", "mail_relay.example"},
		// Characters IDNA maps to nothing (a soft hyphen) are not the
		// empty domain, which "ada@" would have.
		{"\u00ad", "\u00ad"},
	} {
		if got := maildomain.Canon(tc.received); got != tc.canon {
			t.Errorf("Canon(%q) = %q, want %q", tc.received, got, tc.canon)
		}
	}
}
