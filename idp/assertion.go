// Package idp holds what every sign-in produces, whatever the protocol: an
// Assertion of who the identity provider says the user is. The protocol
// adapters (idp/oidc, idp/saml) verify everything their protocol requires
// before they return one, so code that receives an Assertion may trust it.
//
// Nothing here knows about Caddy, the store or the JIT rules.
package idp

import "sort"

// Protocols an Assertion can come from.
const (
	ProtocolOIDC = "oidc"
	ProtocolSAML = "saml"
)

// Assertion is a verified statement from an identity provider about one user.
type Assertion struct {
	// IdP is the configured name of the identity provider ("okta", "entra", …).
	IdP string
	// Protocol is ProtocolOIDC or ProtocolSAML.
	Protocol string
	// Subject is the protocol-level subject: the ID token's "sub", or the
	// SAML NameID. Which value becomes the user's uniqueUserId is decided by
	// the mapping preset, not here.
	Subject string
	// SubjectFormat is the SAML NameID Format (empty for OIDC).
	SubjectFormat string
	// Attributes are the raw claims or SAML attributes, every value as a
	// string. OIDC claims are flattened: arrays become several values,
	// numbers and booleans their JSON text, objects their JSON text.
	Attributes map[string][]string
	// EmailVerified reports whether the IdP vouched for the email address
	// (OIDC "email_verified"; SAML IdPs that are configured as verifying).
	EmailVerified bool
	// Logout is what the IdP needs to end its own session later.
	Logout LogoutInfo
}

// LogoutInfo carries the protocol data needed for single logout. It is kept
// with the local session; store.LogoutInfo has the same fields so that one
// converts to the other.
type LogoutInfo struct {
	IDToken      string // OIDC id_token_hint
	SessionIndex string // SAML SessionIndex
	NameID       string // SAML NameID
	NameIDFormat string // SAML NameID Format
}

// AttributeNames returns the names of the attributes that arrived, for error
// pages that must help an IdP admin without revealing any value.
func (a *Assertion) AttributeNames() []string {
	names := make([]string, 0, len(a.Attributes))
	for k := range a.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// First returns the first non-empty value of the named attribute.
func (a *Assertion) First(name string) string {
	for _, v := range a.Attributes[name] {
		if v != "" {
			return v
		}
	}
	return ""
}
