package idp

import (
	"errors"
	"time"
)

// Defaults both protocols take for the zero values of their configs.
const (
	// DefaultClockSkew is the tolerance for clock differences with the IdP.
	// One minute is ample for NTP-synchronised servers and keeps a captured
	// assertion's or token's usable window short.
	DefaultClockSkew = time.Minute
	// DefaultLoginTimeout is how long a person may spend at the IdP: the
	// flow cookie, and the replay entry of what the sign-in began with,
	// live this long.
	DefaultLoginTimeout = 10 * time.Minute
	// DefaultHTTPTimeout bounds a request to the IdP (discovery, keys,
	// metadata, the token exchange) when the caller's client sets none: a
	// sign-in that finds no discovery document or metadata yet waits for
	// one, so it is the longest a person waits on an IdP that does not
	// answer.
	DefaultHTTPTimeout = 10 * time.Second
)

// CodeMisconfigured is the reference code of a sign-in that cannot work
// until an administrator acts: the IdP's discovery document or metadata
// contradicts the configuration (an issuer that differs by a trailing "/",
// no PKCE S256, expired SAML metadata). Unlike an IdP that cannot be
// reached, trying again does not help. Both protocols use it.
const CodeMisconfigured = "idp_misconfigured"

// LoginError is a sign-in (or, with Logout set, a logout message) that the
// protocol adapter refused. Code is a short, stable reason
// ("state_replayed", "saml_signature_invalid", …) used for the audit trail,
// metrics and the error page; Err is the detail for logs only, never shown
// to the browser.
type LoginError struct {
	Code string
	Err  error
	// Logout marks a refused logout message (SAML LogoutRequest or
	// LogoutResponse, OIDC logout token) rather than a sign-in.
	Logout bool
	// SessionEnded, with Logout, says the local session had ended before
	// the refused message arrived: it was the IdP's answer to a logout
	// begun here, so only the IdP's session may survive.
	SessionEnded bool
	// Bound reports that the request carried this browser's valid flow
	// cookie, so a sign-in really was in progress. Anything else (no
	// cookie, a forged one, an unsolicited post) is what unauthenticated
	// traffic can send without limit, so its audit events have a budget of
	// their own per instance, and say so (signin.Refusals,
	// docs/security.md).
	Bound bool
}

func (e *LoginError) Error() string {
	what := "login failed: "
	if e.Logout {
		what = "logout refused: "
	}
	if e.Err == nil {
		return what + e.Code
	}
	return what + e.Code + ": " + e.Err.Error()
}

func (e *LoginError) Unwrap() error { return e.Err }

// Fail returns a *LoginError with the given code wrapping err.
func Fail(code string, err error) error { return &LoginError{Code: code, Err: err} }

// FailLogout returns a *LoginError for a refused logout message.
func FailLogout(code string, err error) error {
	return &LoginError{Code: code, Err: err, Logout: true}
}

// ErrorCode returns the code of a *LoginError in err's chain, or fallback.
func ErrorCode(err error, fallback string) string {
	var le *LoginError
	if errors.As(err, &le) {
		return le.Code
	}
	return fallback
}
