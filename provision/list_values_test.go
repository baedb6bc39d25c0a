package provision_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision"
)

// TestAllowedDomainsCommaListRefused: `allowed_domains a.example,
// b.example` would allow the domain "a.example,", which no email has:
// a.example's users refused at every sign-in. It is refused at load,
// saying how to write a list.
func TestAllowedDomainsCommaListRefused(t *testing.T) {
	for _, domains := range [][]string{{"a.example,", "b.example"}, {"a.example,b.example"}, {"a.example;", "b.example"}} {
		err := provision.Rules{AllowedDomains: domains}.Validate()
		if err == nil || !strings.Contains(err.Error(), "allowed_domains") || !strings.Contains(err.Error(), "separate values with spaces, not commas") {
			t.Errorf("allowed_domains %q: %v, want it refused as a comma list", domains, err)
		}
	}
	if err := (provision.Rules{AllowedDomains: []string{"a.example", "@b.example"}}).Validate(); err != nil {
		t.Errorf("allowed_domains a.example @b.example: %v", err)
	}
}

// TestCheckEmail: the rule for an address a configuration lists (the
// routes' user rules) refuses what can match no mailbox.
func TestCheckEmail(t *testing.T) {
	for _, bad := range []string{"*@evil.example", "@evil.example", " a@evil.example", "a@evil.example ", "a@evil.example,", "a@b.example;c@d.example", "a@", "a@https://evil.example", "a@evil .example"} {
		if err := provision.CheckEmail(bad); err == nil {
			t.Errorf("CheckEmail(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"a@evil.example", "Ada.Lovelace+x@Bücher.example", "νίκος@example.gr", "a@evil.example."} {
		if err := provision.CheckEmail(good); err != nil {
			t.Errorf("CheckEmail(%q): %v", good, err)
		}
	}
}
