// Package idp holds what every sign-in produces, whatever the protocol: an
// Assertion of who the identity provider says the user is. The protocol
// adapters (idp/oidc, idp/saml) verify everything their protocol requires
// before they return one, so code that receives an Assertion may trust it.
//
// Nothing here knows about Caddy, the store or the JIT rules.
package idp

import (
	"sort"
	"time"
)

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
	// numbers and booleans their JSON text, objects their JSON text and
	// (idp/oidc claimPaths) their members again under dotted paths.
	Attributes map[string][]string
	// EmailVerified reports whether the IdP vouched for the "email"
	// attribute (OIDC "email_verified", or its absence with trust_email),
	// and for no other: a mapped email read elsewhere is unverified. SAML
	// vouches only with the operator's trust_email, for the attribute the
	// mapping keeps as the email, whichever it is (signin's emailVerified).
	EmailVerified bool
	// Logout is how the IdP names this session in its own logout
	// messages (and, with the ID token, what it needs to end its own).
	Logout LogoutInfo
	// Tokens are what the IdP issued with this sign-in (OIDC: the ID
	// token, the access token with its expiry, a refresh token); nil for
	// SAML. The sign-in keeps what the configuration needs (signin.IdP).
	Tokens *Tokens
	// SessionNotOnOrAfter is when the IdP says the session it vouches for
	// ends: the earliest SAML AuthnStatement SessionNotOnOrAfter, which
	// SAML Core 2.7.2 makes an upper bound on any session derived from the
	// assertion. The sign-in ends its session by then even when the
	// configured lifetime is longer, so that an IdP's shorter session
	// policy (ADFS, Shibboleth, Keycloak send it) holds here too. It
	// includes the IdP's clock skew, as the assertion's other times. Zero
	// when the IdP set no bound; OIDC has no such claim (an ID token's
	// "exp" bounds the token, not the session), so it is always zero there.
	SessionNotOnOrAfter time.Time
	// AuthTime is when the person last authenticated at the IdP, as the
	// IdP says (OIDC "auth_time", SAML AuthnInstant); zero when it does not
	// say. It is not when this sign-in happened: an IdP that still has a
	// session signs a person in without asking for anything. An app that
	// needs a fresh authentication (before a sensitive action) reads it
	// from the identity JWT, and asks for one with a re-authenticating
	// sign-in, which is held to it.
	AuthTime time.Time
	// SingleUse are the protocol IDs that make this assertion single-use
	// (the OIDC state, the SAML assertion ID). The sign-in consumes them in
	// the transaction that creates the session, so a replay can never
	// produce a second session, even on another instance.
	SingleUse []SingleUse
	// Unbound says that no flow cookie of this browser opened the
	// callback (an IdP-initiated SAML response): a replay of it is
	// refused as traffic bound to no login (LoginError.Bound false), as
	// the adapter's own refusals of such a callback are.
	Unbound bool
}

// SingleUse is one ID an assertion may be accepted with only once.
type SingleUse struct {
	Kind  string    // namespace: "oidc_state", "saml_id"
	ID    string    // unique within Kind (IdP name included)
	Until time.Time // after this the assertion is refused anyway; the ID may be forgotten
	// Code is the *LoginError code a replay is refused with.
	Code string
}

// LogoutInfo carries the protocol data of single logout. All but the ID
// token are kept with the local session (as store.LogoutInfo, which has
// the same fields, so that one converts to the other): an IdP names
// sessions by Subject and SessionID in its logout messages, and a SAML
// LogoutRequest names the NameID as it was issued, qualifiers and all
// (SAML profiles 4.4.4.1); the ID token is kept sealed with the session's
// tokens.
type LogoutInfo struct {
	Subject       string // SAML NameID; OIDC "sub"
	SubjectFormat string // SAML NameID Format; empty for OIDC
	// The SAML NameID's NameQualifier and SPNameQualifier, when the IdP
	// issued them; empty for OIDC, and for sessions stored before they
	// were kept.
	NameQualifier   string
	SPNameQualifier string
	SessionID       string // SAML SessionIndex; OIDC "sid"
	IDToken         string // OIDC id_token_hint (an Assertion carries it in Tokens); never stored in the session record
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
