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
		{"example.com,", "", ""},
		{"a.example;b.example", "", ""},
		{"*.example.com", "", ""},
		{"https://example.com", "", ""},
		{"example.com:443", "", ""},
		{"ada@example.com", "", ""},
		{"exa mple.com", "", ""},
		{"@", "", ""},
		{".", "", ""},
		{" ", "", ""},
		{"{env.DOMAIN}", "", ""},
		{"{env.DOMAIN}.example", "", ""},
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
