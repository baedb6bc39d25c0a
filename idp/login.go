package idp

import (
	"context"
	"time"
)

// ReplayGuard remembers single-use IDs (OIDC states, SAML assertion and
// request IDs) until they expire, across restarts. The store implements it.
type ReplayGuard interface {
	// ConsumeOnce reports true the first time an (kind, id) pair is seen
	// before until, and false on every later call.
	ConsumeOnce(ctx context.Context, kind, id string, until time.Time) (bool, error)
}

// LoginError is a sign-in that the protocol adapter refused. Code is a short,
// stable reason ("state_replayed", "id_token_invalid", …) used for the audit
// trail, metrics and the error page; Err is the detail for logs only, never
// shown to the browser.
type LoginError struct {
	Code string
	Err  error
}

func (e *LoginError) Error() string {
	if e.Err == nil {
		return "login failed: " + e.Code
	}
	return "login failed: " + e.Code + ": " + e.Err.Error()
}

func (e *LoginError) Unwrap() error { return e.Err }

// Fail returns a *LoginError with the given code wrapping err.
func Fail(code string, err error) error { return &LoginError{Code: code, Err: err} }
