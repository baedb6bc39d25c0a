package gateway

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestDomainRulesMatchEverySpelling: a domain rule compares the email's
// domain in the form allowed_domains does (maildomain.Canon), so no
// spelling of a denied domain (upper case, punycode, decomposed, the
// root's dot) escapes a deny rule, and every spelling of an allowed one
// passes. A rule as JSON may pad it (" bücher.example "), which the
// rule accepts and so must match by.
func TestDomainRulesMatchEverySpelling(t *testing.T) {
	for _, rule := range []string{"bücher.example", "@Bücher.Example", "xn--bcher-kva.example", "bücher.example.", " @bücher.example "} {
		deny, err := NewAccessPolicy(nil, []AccessRule{{Kind: "domain", Values: []string{rule}}})
		if err != nil {
			t.Fatal(err)
		}
		allow, err := NewAccessPolicy([]AccessRule{{Kind: "domain", Values: []string{rule}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, email := range []string{
			"zoe@bücher.example",
			"zoe@BÜCHER.example",
			"zoe@XN--BCHER-KVA.example",
			"zoe@bu\u0308cher.example", // decomposed ü
			"zoe@bücher.example.",
			"zoe@xn--bcher-kva.example.",
		} {
			id := &session.Identity{UserID: "u1", Email: email}
			if deny.Permits(id) {
				t.Errorf("deny domain %q let %q through", rule, email)
			}
			if !allow.Permits(id) {
				t.Errorf("allow domain %q refused %q", rule, email)
			}
		}
		for _, email := range []string{"zoe@bucher.example", "zoe@sub.bücher.example", "zoe@bücher.example.org", "bücher.example", ""} {
			id := &session.Identity{UserID: "u1", Email: email}
			if !deny.Permits(id) || allow.Permits(id) {
				t.Errorf("domain %q matched %q", rule, email)
			}
		}
	}
}

// TestDomainRulesRefuseWhatMatchesNoOne: a domain rule is held to
// allowed_domains' rule (maildomain.Check): a wildcard, a URL, a port
// or an address matches no email's domain, so `deny domain *.evil.example`
// would deny nobody. A leading "@" is how a domain is often written, and
// stays allowed.
func TestDomainRulesRefuseWhatMatchesNoOne(t *testing.T) {
	for _, v := range []string{"*.evil.example", "https://evil.example", "evil.example:443", "mallory@evil.example", "evil .example", "@"} {
		for _, kind := range []string{"allow", "deny"} {
			rules := []AccessRule{{Kind: "domain", Values: []string{"corp.example", v}}}
			var err error
			if kind == "allow" {
				_, err = NewAccessPolicy(rules, nil)
			} else {
				_, err = NewAccessPolicy(nil, rules)
			}
			if err == nil || !strings.Contains(err.Error(), kind+": access rule domain") || !strings.Contains(err.Error(), "is not a domain name") {
				t.Errorf("%s domain %q: %v, want it refused as not a domain name", kind, v, err)
			}
			if err := rules[0].Check(); err == nil {
				t.Errorf("AccessRule.Check accepted domain %q", v)
			}
		}
	}
	if _, err := NewAccessPolicy(nil, []AccessRule{{Kind: "domain", Values: []string{"@corp.example", " corp.example "}}}); err != nil {
		t.Errorf("domain with a leading @ or spaces refused: %v", err)
	}
}

// TestEmailRulesAllocateNothing: the plain ASCII email of nearly every
// request is compared without a canonical copy.
func TestEmailRulesAllocateNothing(t *testing.T) {
	p, err := NewAccessPolicy(nil, []AccessRule{{Kind: "user", Values: []string{"bob@example.com"}}, {Kind: "domain", Values: []string{"example.org"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := &session.Identity{UserID: "u1", Email: "ada@Example.COM"}
	if n := testing.AllocsPerRun(100, func() {
		if !p.Permits(id) {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

// TestUserRulesMatchSpellingsOfOneMailbox: an email in a user rule matches
// the spellings of that mailbox (case, NFC or NFD, an IDN domain in either
// form) and nothing that only case folding makes equal: "ſam" (long s) is
// not "sam"; nor anything the store's email index keeps apart: "İda" is
// not "ida".
func TestUserRulesMatchSpellingsOfOneMailbox(t *testing.T) {
	for _, tc := range []struct {
		rule  string
		same  []string
		other []string
	}{
		{"sam@example.com",
			[]string{"sam@example.com", "SAM@Example.COM", "sam@example.com."},
			[]string{"\u017fam@example.com", "sam@example.org", "sam"}},
		// Σ has two lower cases: σ, and ς at a word's end.
		{"νίκος@example.gr",
			[]string{"ΝΊΚΟΣ@example.gr", "νίκοσ@example.gr"},
			[]string{"νίκο@example.gr"}},
		// "İ" lowers to "i" letter by letter, but the store's email index
		// keys it "i" and U+0307, so "İda" may be another user than "ida":
		// a rule for one must not let the other in.
		{"ida@x.com",
			[]string{"IDA@x.com"},
			[]string{"\u0130da@x.com"}},
		{"\u0130da@x.com",
			[]string{"\u0130DA@X.COM", "i\u0307da@x.com"},
			[]string{"ida@x.com", "IDA@x.com"}},
		{"zoë@bücher.example",
			[]string{"ZOË@BÜCHER.example", "zoe\u0308@xn--bcher-kva.example", "Zoë@bücher.example."},
			[]string{"zoe@bücher.example", "zoë@bucher.example"}},
	} {
		deny, err := NewAccessPolicy(nil, []AccessRule{{Kind: "user", Values: []string{tc.rule}}})
		if err != nil {
			t.Fatal(err)
		}
		allow, err := NewAccessPolicy([]AccessRule{{Kind: "user", Values: []string{tc.rule}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, email := range tc.same {
			id := &session.Identity{UserID: "u1", Email: email}
			if deny.Permits(id) || !allow.Permits(id) {
				t.Errorf("user %q did not match %q", tc.rule, email)
			}
		}
		for _, email := range tc.other {
			id := &session.Identity{UserID: "u1", Email: email}
			if !deny.Permits(id) || allow.Permits(id) {
				t.Errorf("user %q matched %q", tc.rule, email)
			}
		}
	}
}

// TestUserIDRulesMatchTheUserIDOnly: a user rule without an @ names a
// user by the gateway's ID, which only that user has. An IdP can assert
// any email, one without an @ too (it is stored as sent), so another
// person's email spelled as that ID must not match the rule.
func TestUserIDRulesMatchTheUserIDOnly(t *testing.T) {
	const ada = "6f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f"
	allow, err := NewAccessPolicy([]AccessRule{{Kind: "user", Values: []string{ada}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !allow.Permits(&session.Identity{UserID: ada, Email: "ada@example.com"}) {
		t.Error("the user the rule names is refused")
	}
	for _, email := range []string{ada, strings.ToUpper(ada)} {
		if allow.Permits(&session.Identity{UserID: "0a0b0c0d0e0f", Email: email}) {
			t.Errorf("a user whose IdP asserted the email %q passes the rule naming user %s", email, ada)
		}
	}
}
