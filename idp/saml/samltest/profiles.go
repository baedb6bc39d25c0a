package samltest

import "github.com/crewjam/saml"

// Attribute names the profiles use.
const (
	// Entra ID's default claim URIs.
	EntraObjectID     = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	EntraTenantID     = "http://schemas.microsoft.com/identity/claims/tenantid"
	EntraGivenName    = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	EntraSurname      = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	EntraEmailAddress = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	EntraName         = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	EntraGroups       = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	// EntraGroupsLink is sent instead of the groups when the user is in
	// more groups than fit in a token (150 for SAML).
	EntraGroupsLink = "http://schemas.microsoft.com/claims/groups.link"
)

// Person is who a profile describes.
type Person struct {
	ID, FirstName, LastName, Email string
	Groups                         []string
	// TenantID is Entra's tenant; ignored by the other profiles.
	TenantID string
	// GroupsOverage makes the Entra profiles send the groups.link
	// attribute (pointing at Graph) instead of the groups, as Entra does
	// for users in more than 150 groups.
	GroupsOverage bool
}

func (p Person) groups(name string, attrs map[string][]string) {
	if len(p.Groups) > 0 {
		attrs[name] = append([]string(nil), p.Groups...)
	}
}

func (p Person) entraGroups(attrs map[string][]string) {
	if p.GroupsOverage {
		attrs[EntraGroupsLink] = []string{"https://graph.windows.net/" + p.TenantID + "/users/" + p.ID + "/getMemberObjects"}
		return
	}
	p.groups(EntraGroups, attrs)
}

// Entra returns a user as Microsoft Entra ID sends it with its default
// Attributes & Claims: claim URIs, the UPN (here the email) as an
// emailAddress-format NameID.
func Entra(username, password string, p Person) User {
	attrs := map[string][]string{
		EntraObjectID:     {p.ID},
		EntraGivenName:    {p.FirstName},
		EntraSurname:      {p.LastName},
		EntraEmailAddress: {p.Email},
		EntraName:         {p.Email},
	}
	if p.TenantID != "" {
		attrs[EntraTenantID] = []string{p.TenantID}
	}
	p.entraGroups(attrs)
	return User{Username: username, Password: password, NameID: p.Email,
		NameIDFormat: string(saml.EmailAddressNameIDFormat), Attributes: attrs}
}

// EntraCustom is Entra ID configured as the product documentation says:
// the default claims plus userUniqueId, firstName, lastName and email.
func EntraCustom(username, password string, p Person) User {
	u := Entra(username, password, p)
	u.Attributes["userUniqueId"] = []string{p.ID}
	u.Attributes["firstName"] = []string{p.FirstName}
	u.Attributes["lastName"] = []string{p.LastName}
	u.Attributes["email"] = []string{p.Email}
	return u
}

// Okta returns a user as an Okta SAML 2.0 app configured as the product
// documentation says sends it: uniqueUserId, firstName, lastName, email
// (and groups, when a group attribute statement is set up), with the
// username as an unspecified-format NameID.
func Okta(username, password string, p Person) User {
	attrs := map[string][]string{
		"uniqueUserId": {p.ID},
		"firstName":    {p.FirstName},
		"lastName":     {p.LastName},
		"email":        {p.Email},
	}
	p.groups("groups", attrs)
	return User{Username: username, Password: password, NameID: username,
		NameIDFormat: string(saml.UnspecifiedNameIDFormat), Attributes: attrs}
}

// PingOne returns a user as a PingOne SAML application with the product
// documentation's attribute mappings sends it: userUniqueId, firstName,
// lastName, email (and memberOf for groups), with the user ID as a
// persistent NameID.
func PingOne(username, password string, p Person) User {
	attrs := map[string][]string{
		"userUniqueId": {p.ID},
		"firstName":    {p.FirstName},
		"lastName":     {p.LastName},
		"email":        {p.Email},
	}
	p.groups("memberOf", attrs)
	return User{Username: username, Password: password, NameID: p.ID,
		NameIDFormat: string(saml.PersistentNameIDFormat), Attributes: attrs}
}
