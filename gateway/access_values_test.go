package gateway

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestUserRulesRefuseWhatMatchesNoMailbox: a user value with an @ is an
// email (provision.CheckEmail), matched exactly: a wildcard, a bare
// domain, white space at an end or a domain that is none matches no
// mailbox, so `deny user *@evil.example` would deny nobody. It is refused
// at load, naming the fix; plain addresses and user IDs stay allowed.
func TestUserRulesRefuseWhatMatchesNoMailbox(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"*@evil.example", "a wildcard matches no one; for every address of a domain, write a domain rule (domain evil.example)"},
		{"mal*@evil.example", "a wildcard matches no one"},
		{"@evil.example", "no mailbox before the @): for every address of a domain, write a domain rule (domain evil.example)"},
		{" mallory@evil.example", "white space at an end"},
		{"mallory@evil.example\t", "white space at an end"},
		{"mallory@", `"" is not a domain name`},
		{"mallory@*.evil.example", `"*.evil.example" is not a domain name`},
		{"mallory@evil.example:443", "is not a domain name"},
	} {
		for _, kind := range []string{"allow", "deny"} {
			rules := []AccessRule{{Kind: "user", Values: []string{"bob@corp.example", tc.value}}}
			var err error
			if kind == "allow" {
				_, err = NewAccessPolicy(rules, nil)
			} else {
				_, err = NewAccessPolicy(nil, rules)
			}
			if err == nil || !strings.Contains(err.Error(), kind+": access rule user") || !strings.Contains(err.Error(), "is not an email address") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s user %q: %v, want it refused with %q", kind, tc.value, err, tc.want)
			}
			if err := rules[0].Check(); err == nil {
				t.Errorf("AccessRule.Check accepted user %q", tc.value)
			}
		}
	}
	p, err := NewAccessPolicy(nil, []AccessRule{{Kind: "user", Values: []string{"mallory@evil.example", "νίκος@bücher.example", "3f2a-user-id", `"odd local"@corp.example`}}})
	if err != nil {
		t.Fatalf("plain addresses and IDs refused: %v", err)
	}
	if p.Permits(&session.Identity{UserID: "u-1", Email: "Mallory@Evil.example"}) {
		t.Error("deny user mallory@evil.example let her pass")
	}
}

// TestCommaListsRefused: `deny domain evil.example, bad.example` (a list
// written with commas, as many configs write lists) would be the domain
// "evil.example,", which no email has: evil.example silently not denied,
// and an allow rule so written refusing its users. Domain and email
// values with a comma or a semicolon are refused, saying how to write a
// list; a group may have a comma in its name and stays allowed.
func TestCommaListsRefused(t *testing.T) {
	for _, r := range []AccessRule{
		{Kind: "domain", Values: []string{"evil.example,", "bad.example"}},
		{Kind: "domain", Values: []string{"evil.example,bad.example"}},
		{Kind: "domain", Values: []string{"@evil.example;"}},
		{Kind: "user", Values: []string{"mallory@evil.example,", "eve@bad.example"}},
		{Kind: "user", Values: []string{"mallory@evil.example;eve@bad.example"}},
	} {
		for _, kind := range []string{"allow", "deny"} {
			var err error
			if kind == "allow" {
				_, err = NewAccessPolicy([]AccessRule{r}, nil)
			} else {
				_, err = NewAccessPolicy(nil, []AccessRule{r})
			}
			if err == nil || !strings.Contains(err.Error(), kind+": access rule "+r.Kind) || !strings.Contains(err.Error(), "separate values with spaces, not commas") {
				t.Errorf("%s %s %q: %v, want it refused as a comma list", kind, r.Kind, r.Values, err)
			}
		}
	}
	if _, err := NewAccessPolicy([]AccessRule{{Kind: "group", Values: []string{"Sales, EMEA", "eng,"}}}, nil); err != nil {
		t.Errorf("group names with commas refused: %v", err)
	}
}
