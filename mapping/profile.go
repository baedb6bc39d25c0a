// Package mapping turns an identity provider's assertion into the four
// attributes caddy-sso provisions users from, plus groups, using a preset per
// IdP product (entra, okta, pingone, generic) and per-IdP overrides.
package mapping

// Profile is what JIT provisioning needs to know about a user. An empty field
// means the IdP did not send it.
type Profile struct {
	UniqueUserID string
	FirstName    string
	LastName     string
	Email        string
	// Groups holds the group names or IDs the IdP sent. HasGroups tells an
	// IdP that sent none apart from one that sent an empty list, or whose
	// preset says an absent list is an empty one (entra, okta).
	Groups    []string
	HasGroups bool
	// GroupsOverage reports that the IdP sent a marker (Entra's
	// groups.link, hasgroups or _claim_names) instead of a claim the
	// groups are read from.
	GroupsOverage bool
}

// Attribute names, as the product documentation calls them.
const (
	UniqueUserID = "uniqueUserId"
	FirstName    = "firstName"
	LastName     = "lastName"
	Email        = "email"
	Groups       = "groups"
)

// Missing returns the required attributes (uniqueUserId, firstName,
// lastName, email, in that order) that p lacks.
func (p Profile) Missing() []string {
	var out []string
	vals := [numAttributes]string{p.UniqueUserID, p.FirstName, p.LastName, p.Email}
	for _, i := range requiredAttributes {
		if vals[i] == "" {
			out = append(out, attributeNames[i])
		}
	}
	return out
}
