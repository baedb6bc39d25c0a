package gateway

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/caddy-sso/caddy-sso/internal/maildomain"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
)

// AccessRule is one allow or deny line of a protected route: a kind
// (group, domain, user or idp) and the values it matches.
type AccessRule struct {
	// Kind is "group" (a group of the user, compared exactly), "domain"
	// (the email's domain, in maildomain.Canon's form), "user" (the
	// user's ID, exactly, or email, in provision.CanonEmail's form) or
	// "idp" (the IdP the session was made through, exactly; one of the
	// route's IdPs).
	Kind   string   `json:"kind"`
	Values []string `json:"values"`
}

// Check holds the rule on its own to what NewAccessPolicy requires, for a
// parser that reports a mistake at the rule's line.
func (r AccessRule) Check() error {
	_, err := compileAccess([]AccessRule{r})
	return err
}

// accessMatcher is a rule set compiled for the hot path.
type accessMatcher struct {
	groups  map[string]bool
	domains []string        // in maildomain.Canon's form, compared case-insensitively
	users   map[string]bool // the values of user rules, as given: an ID matches here, an email in emails
	emails  []string        // the user values with an @ again, in provision.CanonEmail's form
	idps    []string
	empty   bool
}

func compileAccess(rules []AccessRule) (accessMatcher, error) {
	m := accessMatcher{groups: map[string]bool{}, users: map[string]bool{}, empty: len(rules) == 0}
	for _, r := range rules {
		if len(r.Values) == 0 {
			return m, fmt.Errorf("access rule %q names no value", r.Kind)
		}
		for _, v := range r.Values {
			// An empty value would match everyone without that attribute
			// (`user ""`: every user without an email), and a placeholder
			// is never resolved here, so it would match no one.
			if strings.TrimSpace(v) == "" || strings.Contains(v, "{") {
				return m, fmt.Errorf("access rule %s %q: values are literal names, neither empty nor placeholders", r.Kind, v)
			}
			switch r.Kind {
			case "group":
				m.groups[v] = true
			case "domain":
				// allowed_domains' rule: a wildcard or URL would match
				// no one, and a deny rule so written would deny nobody.
				if err := maildomain.Check(v); err != nil {
					return m, fmt.Errorf("access rule domain %w", err)
				}
				m.domains = append(m.domains, maildomain.Canon(maildomain.Bare(v)))
			case "user":
				// A value with an @ is an email, held to its rule: a
				// wildcard, a bare domain or a padded address would
				// match no mailbox, and a deny rule so written would
				// deny nobody.
				if strings.Contains(v, "@") {
					if err := provision.CheckEmail(v); err != nil {
						return m, fmt.Errorf("access rule user %w", err)
					}
					m.emails = append(m.emails, provision.CanonEmail(v))
				}
				m.users[v] = true
			case "idp":
				m.idps = append(m.idps, v)
			default:
				return m, fmt.Errorf("unknown access rule kind %q (expected group, domain, user or idp)", r.Kind)
			}
		}
	}
	return m, nil
}

// matches reports whether any rule of the set matches the identity. It
// allocates nothing: group and user lookups are map probes, the domain is
// compared case-insensitively without lowering a copy.
func (m *accessMatcher) matches(id *session.Identity) bool {
	if m.empty {
		return false
	}
	for _, name := range m.idps {
		if name == id.IdP {
			return true
		}
	}
	if len(m.users) > 0 {
		// An ID names the user; an email (a value with an @) is matched
		// in canonical form only: an IdP may assert an email without an
		// @, spelled as someone else's ID.
		if m.users[id.UserID] {
			return true
		}
		if canonMatch(m.emails, id.Email, provision.CanonEmail) {
			return true
		}
	}
	if len(m.domains) > 0 {
		if at := strings.LastIndexByte(id.Email, '@'); at >= 0 && canonMatch(m.domains, id.Email[at+1:], maildomain.Canon) {
			return true
		}
	}
	if len(m.groups) > 0 {
		for _, g := range id.Groups {
			if m.groups[g] {
				return true
			}
		}
	}
	return false
}

// canonMatch reports whether v, in canon's form, is one of wants (which
// are). Nearly every v is ASCII without a trailing dot, already in that
// form but for letter case, and is compared without a copy; any other (an
// IDN, a decomposed letter, the root's dot) is made canonical, so that no
// spelling of a denied domain or mailbox escapes its rule. Never
// strings.EqualFold: its case folding makes "ſam" (long s) "sam".
func canonMatch(wants []string, v string, canon func(string) string) bool {
	plain := !strings.HasSuffix(v, ".")
	for i := 0; i < len(v) && plain; i++ {
		plain = v[i] < utf8.RuneSelf
	}
	if !plain {
		return slices.Contains(wants, canon(v))
	}
	for _, w := range wants {
		if len(w) == len(v) && lowerASCIIEqual(w, v) {
			return true
		}
	}
	return false
}

// lowerASCIIEqual reports whether lower-cased v is lower; v is ASCII.
func lowerASCIIEqual(lower, v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// AccessPolicy is a route's allow and deny rules. Deny wins; when any
// allow rule exists, only users an allow rule matches pass.
type AccessPolicy struct {
	allow, deny accessMatcher
	active      bool
}

// NewAccessPolicy compiles a route's allow and deny rules once, at
// provision, so that a bad rule fails the config and Permits only matches.
func NewAccessPolicy(allow, deny []AccessRule) (AccessPolicy, error) {
	var p AccessPolicy
	var err error
	if p.allow, err = compileAccess(allow); err != nil {
		return p, fmt.Errorf("allow: %w", err)
	}
	if p.deny, err = compileAccess(deny); err != nil {
		return p, fmt.Errorf("deny: %w", err)
	}
	p.active = len(allow) > 0 || len(deny) > 0
	return p, nil
}

// Permits decides whether the identity may use the route.
func (p *AccessPolicy) Permits(id *session.Identity) bool {
	if !p.active {
		return true
	}
	if p.deny.matches(id) {
		return false
	}
	return p.allow.empty || p.allow.matches(id)
}

// CheckIdPs refuses idp rules naming an IdP the route does not admit: such
// a rule could never match, which is surely not what was meant.
func (p *AccessPolicy) CheckIdPs(route []string) error {
	for _, m := range []struct {
		what string
		idps []string
	}{{"allow", p.allow.idps}, {"deny", p.deny.idps}} {
		for _, name := range m.idps {
			if !slices.Contains(route, name) {
				return fmt.Errorf("%s idp %q: not one of this route's IdPs (%s)", m.what, name, strings.Join(route, ", "))
			}
		}
	}
	return nil
}
