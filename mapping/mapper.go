package mapping

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/caddy-sso/caddy-sso/idp"
)

// Mapper turns one IdP's assertions into Profiles. It is immutable after New
// and safe for concurrent use.
type Mapper struct {
	preset   string
	protocol string
	cand     candidates
	// absentGroupsNone is the preset's (see preset): it holds with `map
	// groups` too, since the product omits the claim however it is named.
	absentGroupsNone bool
	// groupsUnion: the groups candidates are the operator's `map groups`
	// list, the sources a user's groups come from (groups), rather than a
	// preset's spellings of one claim.
	groupsUnion bool
}

// New builds a mapper for one IdP.
//
// preset is "entra", "okta", "pingone" or "generic" ("" means generic).
// protocol is idp.ProtocolOIDC or idp.ProtocolSAML: the same IdP product
// names its attributes differently per protocol. overrides come from the
// Caddyfile's `map <attribute> <name>…` lines, keyed by attribute
// (uniqueUserId, firstName, lastName, email, groups); an override replaces
// the preset's whole candidate list for that attribute rather than adding to
// it, so that an administrator can also take a name away (say, a claim their
// IdP fills with something else). Overrides may use the special names
// NameID ("$nameid", SAML only) and Subject ("$subject").
//
// Every mistake is reported here, at configuration time, with the valid
// choices, rather than as a failed login later.
func New(preset, protocol string, overrides map[string][]string) (*Mapper, error) {
	if preset == "" {
		preset = PresetGeneric
	}
	p, ok := presets[preset]
	if !ok {
		return nil, fmt.Errorf("mapping: unknown preset %q (valid: %s)", preset, strings.Join(Presets(), ", "))
	}
	var base candidates
	switch protocol {
	case idp.ProtocolSAML:
		base = p.saml
	case idp.ProtocolOIDC:
		base = p.oidc
	default:
		return nil, fmt.Errorf("mapping: unknown protocol %q (valid: %s, %s)", protocol, idp.ProtocolOIDC, idp.ProtocolSAML)
	}

	m := &Mapper{preset: preset, protocol: protocol, absentGroupsNone: p.absentGroupsNone}
	// Copy every list, so that neither overrides nor a caller holding
	// Expected's result can reach the shared preset table.
	for i := range base {
		m.cand[i] = append([]string(nil), base[i]...)
	}

	// Sorted, so that the error for several bad lines is deterministic.
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, attr := range keys {
		i, ok := attributeIndex(attr)
		if !ok {
			return nil, fmt.Errorf("mapping: unknown attribute %q in map (valid: %s)", attr, strings.Join(attributeNames[:], ", "))
		}
		names := overrides[attr]
		if len(names) == 0 {
			return nil, fmt.Errorf("mapping: map %s: at least one attribute name is required", attr)
		}
		list := make([]string, 0, len(names))
		for _, n := range names {
			if strings.TrimSpace(n) == "" {
				return nil, fmt.Errorf("mapping: map %s: empty attribute name", attr)
			}
			if strings.HasPrefix(n, "$") {
				switch {
				case n == NameID && protocol != idp.ProtocolSAML:
					return nil, fmt.Errorf("mapping: map %s: %s exists only for SAML (use %s for the OIDC subject)", attr, NameID, Subject)
				case n != NameID && n != Subject:
					return nil, fmt.Errorf("mapping: map %s: unknown special name %q (valid: %s, %s)", attr, n, NameID, Subject)
				}
			}
			list = append(list, n)
		}
		m.cand[i] = list
		m.groupsUnion = m.groupsUnion || i == idxGroups
	}
	return m, nil
}

// Preset returns the preset name the mapper was built from ("" resolved to
// "generic").
func (m *Mapper) Preset() string { return m.preset }

// Protocol returns idp.ProtocolOIDC or idp.ProtocolSAML.
func (m *Mapper) Protocol() string { return m.protocol }

// Expected returns the candidate names for attribute, in the order they are
// tried, for error pages and `caddy sso` diagnostics. It returns nil for an
// unknown attribute. The slice is the caller's own.
func (m *Mapper) Expected(attribute string) []string {
	i, ok := attributeIndex(attribute)
	if !ok {
		return nil
	}
	return append([]string(nil), m.cand[i]...)
}

// ReadsAll reports whether attribute is read from all of its Expected
// names at once, their union (an operator's `map groups`), rather than
// from the first one present.
func (m *Mapper) ReadsAll(attribute string) bool {
	i, ok := attributeIndex(attribute)
	return ok && i == idxGroups && m.groupsUnion
}

// Map reads a verified assertion into a Profile. For each single-valued
// attribute the first candidate with a non-blank value wins; for groups see
// groups (an operator's list is a union). Values are trimmed of surrounding
// white space and otherwise kept as the IdP sent them (email is not
// lowercased: comparisons elsewhere are case-insensitive, and the stored
// value should be what the IdP holds). Group names are the exception: they
// are kept byte for byte, untrimmed (see cleanGroups).
//
// The only error is a *MissingError when no uniqueUserId can be found: without
// it there is nobody to sign in. Its Missing lists uniqueUserId first, then
// any other required attribute that is also absent, so that one error page
// shows the IdP administrator everything to fix at once. Other missing
// attributes are not an error here; whether they deny a login is the JIT
// rules' decision (see Profile.Missing and Mapper.Missing). On error the
// returned Profile is empty.
//
// An assertion whose Protocol is set and differs from the mapper's is a
// wiring bug and returns a plain error instead of mapping by the wrong rules.
func (m *Mapper) Map(a *idp.Assertion) (Profile, error) {
	if a == nil {
		return Profile{}, m.Missing(&idp.Assertion{}, UniqueUserID)
	}
	if a.Protocol != "" && a.Protocol != m.protocol {
		return Profile{}, fmt.Errorf("mapping: %s assertion given to the %s mapper of IdP %q", a.Protocol, m.protocol, a.IdP)
	}
	p := Profile{
		UniqueUserID: m.first(a, idxUniqueUserID),
		FirstName:    m.first(a, idxFirstName),
		LastName:     m.first(a, idxLastName),
		Email:        m.first(a, idxEmail),
	}
	p.Groups, p.HasGroups = m.groups(a)
	p.GroupsOverage = m.overage(a, p.HasGroups)
	// An IdP that omits the attribute for a user in no group said "none".
	p.HasGroups = p.HasGroups || m.absentGroupsNone && !p.GroupsOverage
	if p.UniqueUserID == "" {
		return Profile{}, m.Missing(a, p.Missing()...)
	}
	return p, nil
}

// first returns the first non-blank value among attribute i's candidates.
func (m *Mapper) first(a *idp.Assertion, i int) string {
	for _, name := range m.cand[i] {
		if name != "" && name[0] == '$' {
			if v := m.special(a, name, i); v != "" {
				return v
			}
			continue
		}
		for _, v := range a.Attributes[name] {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
	}
	return ""
}

// special resolves NameID and Subject for attribute i. The persistent-only
// rule lives here, keyed on the attribute rather than on the preset, so that
// an override cannot make a transient or email NameID a user's key by
// accident.
func (m *Mapper) special(a *idp.Assertion, name string, i int) string {
	switch m.protocol {
	case idp.ProtocolOIDC:
		if name == Subject {
			return strings.TrimSpace(a.Subject)
		}
		return ""
	default: // SAML: both names mean the NameID.
		if i == idxUniqueUserID && a.SubjectFormat != PersistentNameIDFormat {
			return ""
		}
		return strings.TrimSpace(a.Subject)
	}
}

// groups returns the user's groups and whether any candidate was present at
// all (an IdP that sends an empty groups list says "no groups", one that
// sends nothing says nothing, unless its preset says otherwise: Map,
// absentGroupsNone).
//
// An operator's `map groups A B` lists the claims a user's groups come from
// (groupsUnion): their union, so that an Entra user with both groups and
// app roles (`map groups groups roles`) keeps both. A preset's candidates
// are spellings of one claim (the Entra groups URI or `groups`, PingOne's
// `groups` or `memberOf`, an LDAP IdP's `memberOf` DNs or `isMemberOf`
// names): the first that holds any group, as for the single-valued
// attributes (first), so that one membership is not listed twice in two
// forms.
func (m *Mapper) groups(a *idp.Assertion) ([]string, bool) {
	present := false
	var all []string
	for _, name := range m.cand[idxGroups] {
		var vals []string
		if name != "" && name[0] == '$' {
			v := m.special(a, name, idxGroups)
			if v == "" {
				continue
			}
			vals = []string{v}
		} else {
			var ok bool
			if vals, ok = a.Attributes[name]; !ok {
				continue
			}
		}
		present = true
		if !m.groupsUnion {
			if g := cleanGroups(vals); len(g) > 0 {
				return g, true
			}
			continue
		}
		all = append(all, vals...)
	}
	return cleanGroups(all), present
}

// dedupMapThreshold is the list length from which a set beats a linear scan.
const dedupMapThreshold = 32

// cleanGroups drops blank values (empty or all white space) and exact
// duplicates, and keeps the IdP's order. It returns nil when nothing is left.
//
// Names are not trimmed: " admins" or "admins\u00a0" is another group than
// "admins" in the IdP, and trimming would let its members pass `allow group
// admins`. Access rules, SCIM and the groups header (session.JoinGroups)
// all compare and carry the exact name; docs/security.md, "Groups".
func cleanGroups(vals []string) []string {
	var out []string
	var seen map[string]struct{}
	if len(vals) > dedupMapThreshold {
		seen = make(map[string]struct{}, len(vals))
	}
outer:
	for _, v := range vals {
		if strings.TrimSpace(v) == "" {
			continue
		}
		if seen != nil {
			if _, dup := seen[v]; dup {
				continue
			}
			seen[v] = struct{}{}
		} else {
			for _, o := range out {
				if o == v {
					continue outer
				}
			}
		}
		if out == nil {
			out = make([]string, 0, len(vals))
		}
		out = append(out, v)
	}
	return out
}

// overage reports whether the IdP said that a claim the groups are read
// from did not fit in the token. Each marker stands in for a claim of its
// own (groups.link for the Entra groups URI, hasgroups for the "groups"
// claim, _claim_names for the claims it names). _claim_names counts only
// for a groups candidate (readsGroups); the other two also count when a
// candidate that may be a renamed groups claim did not arrive
// (groupsClaimMissing), as for a tenant that renamed its group claim and
// maps the new name. So an operator who maps groups from app roles alone
// (`map groups roles`, Microsoft's advice against overage) gets the roles
// that arrived, and none when the last was removed, rather than the stored
// roles kept for good, while a renamed groups claim that overflowed keeps
// the stored groups instead of leaving the user with the roles alone. A
// false overage only keeps stored groups a while; a missed one wipes them.
func (m *Mapper) overage(a *idp.Assertion, groupsPresent bool) bool {
	missing := m.groupsClaimMissing(a, groupsPresent)
	if m.protocol == idp.ProtocolSAML {
		_, ok := a.Attributes[EntraGroupsLink]
		return ok && (m.readsGroups(entraGroups) || missing)
	}
	for _, v := range a.Attributes[EntraHasGroups] {
		if strings.EqualFold(strings.TrimSpace(v), "true") && (m.readsGroups(entraOIDCGroups) || missing) {
			return true
		}
	}
	for _, v := range a.Attributes[OIDCClaimNames] {
		if m.claimNamesHaveGroups(v) {
			return true
		}
	}
	return false
}

// groupsClaimMissing reports whether a groups candidate that is neither an
// app role claim nor a special name (one an operator may have given
// Entra's group claim) did not arrive: any such source of an operator's
// union (groupsUnion), or all of a preset's spellings of one claim.
func (m *Mapper) groupsClaimMissing(a *idp.Assertion, groupsPresent bool) bool {
	for _, c := range m.cand[idxGroups] {
		if c == entraRoles || c == entraRoleURI || c != "" && c[0] == '$' {
			continue
		}
		if !m.groupsUnion {
			return !groupsPresent
		}
		if _, ok := a.Attributes[c]; !ok {
			return true
		}
	}
	return false
}

// readsGroups reports whether claim is one of the groups candidates: the
// one rule by which an overage marker counts (overage).
func (m *Mapper) readsGroups(claim string) bool {
	return slices.Contains(m.cand[idxGroups], claim)
}

// claimNamesHaveGroups reports whether an OIDC _claim_names object (flattened
// to its JSON text) names one of the groups candidates as a distributed
// claim. If the text does not parse, it falls back to a substring test: a
// false "overage" only keeps stored groups, a missed one would erase them.
func (m *Mapper) claimNamesHaveGroups(text string) bool {
	var names map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &names) == nil {
		for claim := range names {
			if m.readsGroups(claim) {
				return true
			}
		}
		return false
	}
	for _, c := range m.cand[idxGroups] {
		if c != "" && c[0] != '$' && strings.Contains(text, `"`+c+`"`) {
			return true
		}
	}
	return false
}

// Missing returns a *MissingError for the given attributes, filled with what
// this mapper expected and what the assertion carried, or nil when
// attributes is empty. The JIT rules use it to explain a denial for missing
// firstName, lastName or email with the same page Map uses for uniqueUserId:
//
//	if miss := p.Missing(); len(miss) > 0 && !relaxed {
//		return m.Missing(a, miss...)
//	}
func (m *Mapper) Missing(a *idp.Assertion, attributes ...string) *MissingError {
	if len(attributes) == 0 {
		return nil
	}
	if a == nil {
		a = &idp.Assertion{}
	}
	e := &MissingError{
		Missing:  append([]string(nil), attributes...),
		Received: a.AttributeNames(),
		Expected: make(map[string][]string, len(attributes)),
	}
	needsID := false
	for _, attr := range attributes {
		e.Expected[attr] = m.Expected(attr)
		if attr == UniqueUserID {
			needsID = true
		}
	}
	// Explain a refused NameID: otherwise the page says "received []" while
	// the IdP administrator can see a NameID in their SAML tracer.
	if needsID && m.protocol == idp.ProtocolSAML && a.Subject != "" && a.SubjectFormat != PersistentNameIDFormat {
		for _, c := range m.cand[idxUniqueUserID] {
			if c == NameID || c == Subject {
				e.NameIDFormat = a.SubjectFormat
				if e.NameIDFormat == "" {
					e.NameIDFormat = "(none)"
				}
				break
			}
		}
	}
	return e
}
