package gateway

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestAccessRulesRefusedAtProvision: a rule that could never mean what it
// says fails the config, with a message that names what is wrong: a kind
// without values, an empty or blank value (`user ""` would match every
// user without an email), a placeholder (never resolved here, so it would
// match no one) and an unknown kind (a typo would otherwise drop the rule,
// and with it a deny).
func TestAccessRulesRefusedAtProvision(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule AccessRule
		want string
	}{
		{"no value", AccessRule{Kind: "group"}, `access rule "group" names no value`},
		{"empty value", AccessRule{Kind: "group", Values: []string{"eng", ""}}, "neither empty nor placeholders"},
		{"blank value", AccessRule{Kind: "user", Values: []string{" \t"}}, "neither empty nor placeholders"},
		{"placeholder", AccessRule{Kind: "group", Values: []string{"{http.request.header.X-Group}"}}, "neither empty nor placeholders"},
		{"placeholder idp", AccessRule{Kind: "idp", Values: []string{"{env.IDP}"}}, "neither empty nor placeholders"},
		{"unknown kind", AccessRule{Kind: "team", Values: []string{"eng"}}, `unknown access rule kind "team" (expected group, domain, user or idp)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.rule.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want %q", err, tc.want)
			}
			for _, side := range []string{"allow", "deny"} {
				var err error
				if side == "allow" {
					_, err = NewAccessPolicy([]AccessRule{tc.rule}, nil)
				} else {
					_, err = NewAccessPolicy(nil, []AccessRule{tc.rule})
				}
				if err == nil || !strings.HasPrefix(err.Error(), side+": ") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: %v, want %q", side, err, tc.want)
				}
			}
		})
	}
}

// TestAccessPolicyVerdicts: each kind of rule matches what it names and
// nothing more, deny wins over allow, a deny-only route admits everyone
// else, and an allow-only route no one else.
func TestAccessPolicyVerdicts(t *testing.T) {
	zoe := &session.Identity{UserID: "u-zoe", Email: "zoe@corp.example", Groups: []string{"staff", "eng"}, IdP: "entra"}
	bob := &session.Identity{UserID: "u-bob", Email: "bob@other.example", Groups: []string{"sales"}, IdP: "okta"}
	for _, tc := range []struct {
		name         string
		allow, deny  []AccessRule
		zoeIn, bobIn bool
	}{
		{"no rules", nil, nil, true, true},
		{"allow idp", []AccessRule{{Kind: "idp", Values: []string{"entra"}}}, nil, true, false},
		{"deny idp", nil, []AccessRule{{Kind: "idp", Values: []string{"okta"}}}, true, false},
		{"allow group, any of the user's", []AccessRule{{Kind: "group", Values: []string{"eng"}}}, nil, true, false},
		{"deny group only", nil, []AccessRule{{Kind: "group", Values: []string{"sales"}}}, true, false},
		{"allow user id", []AccessRule{{Kind: "user", Values: []string{"u-bob"}}}, nil, false, true},
		{"allow user email", []AccessRule{{Kind: "user", Values: []string{"Zoe@Corp.example"}}}, nil, true, false},
		{"allow domain", []AccessRule{{Kind: "domain", Values: []string{"other.example"}}}, nil, false, true},
		{"deny wins over allow", []AccessRule{{Kind: "group", Values: []string{"staff", "sales"}}}, []AccessRule{{Kind: "user", Values: []string{"zoe@corp.example"}}}, false, true},
		{"allow matching no one", []AccessRule{{Kind: "group", Values: []string{"admins"}}}, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewAccessPolicy(tc.allow, tc.deny)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Permits(zoe); got != tc.zoeIn {
				t.Errorf("zoe: Permits = %v, want %v", got, tc.zoeIn)
			}
			if got := p.Permits(bob); got != tc.bobIn {
				t.Errorf("bob: Permits = %v, want %v", got, tc.bobIn)
			}
		})
	}
}

// TestDomainRulesMatchTheWholeDomain: the ASCII fast path compares the
// whole domain, in any letter case (A to Z, both ends), and never a
// prefix or the "@" with it; a trailing root dot is the same domain.
func TestDomainRulesMatchTheWholeDomain(t *testing.T) {
	p, err := NewAccessPolicy(nil, []AccessRule{{Kind: "domain", Values: []string{"zeta.example.org", "corp.az"}}})
	if err != nil {
		t.Fatal(err)
	}
	for email, denied := range map[string]bool{
		"zoe@zeta.example.org":  true,
		"zoe@ZETA.EXAMPLE.ORG":  true,
		"zoe@zeta.example.org.": true,
		"zoe@CORP.AZ":           true,
		"zoe@zeta.example":      false, // a prefix of a denied domain
		"zoe@corp.a":            false,
		"zoe@zeta.example.orgx": false,
	} {
		if got := !p.Permits(&session.Identity{UserID: "u1", Email: email}); got != denied {
			t.Errorf("deny domain zeta.example.org, corp.az: %q denied = %v, want %v", email, got, denied)
		}
	}
}

// TestCheckIdPsNamesTheRule: an idp rule, allow or deny, that names an IdP
// the route does not admit fails the config: it could never match, and a
// deny so written would deny nobody.
func TestCheckIdPsNamesTheRule(t *testing.T) {
	for _, tc := range []struct {
		allow, deny []AccessRule
		want        string
	}{
		{[]AccessRule{{Kind: "idp", Values: []string{"okta"}}}, nil, `allow idp "okta": not one of this route's IdPs (entra, google)`},
		{nil, []AccessRule{{Kind: "idp", Values: []string{"okta"}}}, `deny idp "okta": not one of this route's IdPs (entra, google)`},
		{[]AccessRule{{Kind: "idp", Values: []string{"google"}}}, []AccessRule{{Kind: "idp", Values: []string{"entra"}}}, ""},
	} {
		p, err := NewAccessPolicy(tc.allow, tc.deny)
		if err != nil {
			t.Fatal(err)
		}
		err = p.CheckIdPs([]string{"entra", "google"})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want) {
			t.Errorf("CheckIdPs: %v, want %q", err, tc.want)
		}
	}
}
