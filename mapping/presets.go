package mapping

import "sort"

// Special candidate names. They are not attribute names but stand for the
// protocol-level subject, so that presets and `map` overrides can both use it
// without the protocol adapters having to copy the subject into Attributes.
const (
	// NameID is the SAML NameID. As a uniqueUserId it counts only when its
	// Format is persistent: transient NameIDs change on every login and the
	// other formats (emailAddress, unspecified, …) carry mutable values such
	// as a username, and keying users on those would let one person take
	// over another's account after a rename. For any other attribute the
	// NameID is used whatever its format, because an administrator asked for
	// it explicitly (e.g. `map email email $nameid`). Never set for OIDC;
	// New rejects it in an OIDC mapping.
	NameID = "$nameid"
	// Subject is the protocol subject: the ID token's "sub" for OIDC (as the
	// adapter verified it, not a copy from userinfo), the NameID for SAML
	// with the same persistent-only rule as NameID.
	Subject = "$subject"
)

// Well-known attribute and claim names the presets read.
const (
	claimsWS2005 = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"

	entraObjectID     = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	entraGivenName    = claimsWS2005 + "givenname"
	entraSurname      = claimsWS2005 + "surname"
	entraEmailAddress = claimsWS2005 + "emailaddress"
	entraGroups       = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"

	// EntraGroupsLink is the SAML attribute Entra sends instead of the groups
	// when a user is in more groups than fit in a token (150 for SAML).
	EntraGroupsLink = "http://schemas.microsoft.com/claims/groups.link"
	// OIDCClaimNames is the OIDC distributed-claims map (OpenID Connect Core
	// 5.6.2); Entra uses it for groups overage in ID tokens.
	OIDCClaimNames = "_claim_names"
	// EntraHasGroups is the boolean claim Entra sends instead of the groups
	// in implicit-flow tokens when the user has too many groups.
	EntraHasGroups = "hasgroups"
	// entraOIDCGroups is the ID token claim EntraHasGroups stands in for.
	entraOIDCGroups = "groups"
	// entraRoles and entraRoleURI carry Entra's app roles (OIDC, SAML),
	// which no overage marker stands in for.
	entraRoles   = "roles"
	entraRoleURI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"

	oidGivenName = "urn:oid:2.5.4.42"
	oidSurname   = "urn:oid:2.5.4.4"
	oidMail      = "urn:oid:0.9.2342.19200300.100.1.3"
	oidIsMember  = "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"

	// PersistentNameIDFormat is the only NameID Format accepted as a
	// uniqueUserId.
	PersistentNameIDFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
)

// attribute indexes into a candidate table; order is the documentation's.
const (
	idxUniqueUserID = iota
	idxFirstName
	idxLastName
	idxEmail
	idxGroups
	numAttributes
)

// attributeNames maps an index to its documented name.
var attributeNames = [numAttributes]string{UniqueUserID, FirstName, LastName, Email, Groups}

// Attributes returns the attribute names a `map` line may name, in the order
// of the product documentation.
func Attributes() []string {
	return append([]string(nil), attributeNames[:]...)
}

// requiredAttributes are those JIT needs to create a user (DESIGN section 4).
var requiredAttributes = [...]int{idxUniqueUserID, idxFirstName, idxLastName, idxEmail}

func attributeIndex(name string) (int, bool) {
	for i, n := range attributeNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// candidates lists, per attribute, the names tried in order; the first with a
// non-empty value wins; for groups, the first that holds any group, unless
// an operator's `map groups` lists them, whose union is taken
// (Mapper.groups).
type candidates [numAttributes][]string

// preset is one IdP product's defaults, per protocol.
type preset struct {
	saml, oidc candidates
	// absentGroupsNone: the product leaves the groups attribute out when
	// the user is in no group it would send (Okta's group attribute
	// statement and groups claim filter; Entra's groups claim, whose
	// overage is a marker of its own), so, without an overage marker, an
	// absent one means no groups: a user removed from their last group
	// must lose it at the next sign-in. Elsewhere absence says nothing
	// (the IdP may not be set up to send groups at all) and the stored
	// groups stay. docs/architecture.md: IdP differences are data here.
	absentGroupsNone bool
}

// Preset names.
const (
	PresetEntra   = "entra"
	PresetOkta    = "okta"
	PresetPingOne = "pingone"
	PresetGeneric = "generic"
)

// Every OIDC preset reads the names of the product documentation's table
// first, as custom claims, then the standard claims. An administrator who
// followed the documentation (PingOne and Okta both let an OIDC app emit
// claims named after the table) gets what they configured; one who did not
// still signs in on the standard claims. The custom and standard claims are
// the same directory fields when configured as documented (Okta user.id is
// its sub, PingOne's User ID its sub, Entra's user.objectid its oid), so
// adding the custom claims later does not re-key existing users.
//
// Both spellings of the ID attribute are accepted everywhere: the
// documentation uses userUniqueId for Entra and PingOne and uniqueUserId for
// Okta, and administrators copy from either.
var presets = map[string]preset{
	PresetEntra: {
		saml: candidates{
			idxUniqueUserID: {"userUniqueId", UniqueUserID, entraObjectID},
			idxFirstName:    {FirstName, entraGivenName},
			idxLastName:     {LastName, entraSurname},
			// Not …/claims/name: it carries the UPN, which is no email
			// address for guests (alice_contoso.com#EXT#@tenant…) or
			// onmicrosoft.com accounts, and would then reach the domain
			// allow-list and email-conflict checks as if it were one.
			// Entra's default claim set already sends emailaddress
			// (user.mail); a user without a mailbox gets a clear
			// "missing email" page instead, and an administrator who
			// wants the UPN can `map email … …/claims/name`.
			idxEmail:  {Email, entraEmailAddress},
			idxGroups: {entraGroups, Groups},
		},
		oidc: candidates{
			// oid, never sub: Entra's sub is pairwise per application
			// and does not match the objectId SCIM provisions with. oid
			// is in ID tokens when the profile scope is requested.
			idxUniqueUserID: {UniqueUserID, "userUniqueId", "oid"},
			idxFirstName:    {FirstName, "given_name"},
			idxLastName:     {LastName, "family_name"},
			// preferred_username is the UPN; accepted for OIDC because
			// Entra's ID tokens omit email unless the user has a mailbox
			// and the optional claim is configured, so without it most
			// tenants could not sign in out of the box.
			idxEmail:  {Email, "preferred_username"},
			idxGroups: {Groups},
		},
		absentGroupsNone: true,
	},
	PresetOkta: {
		saml: candidates{
			idxUniqueUserID: {UniqueUserID, "userUniqueId"},
			idxFirstName:    {FirstName},
			idxLastName:     {LastName},
			idxEmail:        {Email},
			idxGroups:       {Groups},
		},
		oidc:             standardOIDC(),
		absentGroupsNone: true,
	},
	PresetPingOne: {
		saml: candidates{
			idxUniqueUserID: {"userUniqueId", UniqueUserID},
			idxFirstName:    {FirstName},
			idxLastName:     {LastName},
			idxEmail:        {Email},
			idxGroups:       {Groups, "memberOf"},
		},
		oidc: standardOIDC(),
	},
	PresetGeneric: {
		saml: candidates{
			idxUniqueUserID: {UniqueUserID, "userUniqueId", NameID},
			idxFirstName:    {FirstName, "givenName", oidGivenName},
			idxLastName:     {LastName, "sn", oidSurname},
			idxEmail:        {Email, "mail", oidMail},
			idxGroups:       {Groups, "memberOf", oidIsMember},
		},
		oidc: standardOIDC(),
	},
}

// standardOIDC is the claim set of okta, pingone and generic OIDC: the
// documented custom claims, then the OpenID Connect standard claims.
func standardOIDC() candidates {
	return candidates{
		idxUniqueUserID: {UniqueUserID, "userUniqueId", Subject},
		idxFirstName:    {FirstName, "given_name"},
		idxLastName:     {LastName, "family_name"},
		idxEmail:        {Email},
		idxGroups:       {Groups},
	}
}

// Presets returns the valid preset names, sorted. "" is accepted by New as
// generic but is not listed.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
