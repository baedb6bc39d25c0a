package idp

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap/zapcore"
)

// Tokens are what an OpenID provider issued for a session and the gateway
// may need later: the ID token as id_token_hint at logout, the access token
// (with its expiry) for routes that pass it upstream, and the refresh token
// that renews it. Package session seals them with the session
// (session.Tokens is this type); they never travel in a cookie.
//
// Tokens never appear in logs: String, GoString, MarshalJSON (which zap.Any
// uses) and MarshalLogObject (zap.Object) say which tokens exist, not what
// they are.
type Tokens struct {
	IDToken      string
	AccessToken  string
	RefreshToken string
	Expiry       time.Time // of the access token; zero when the IdP did not say
}

// String redacts: %v and %s of Tokens (or a struct holding them) print no token.
func (t Tokens) String() string {
	return fmt.Sprintf("Tokens{id_token:%t access_token:%t refresh_token:%t expiry:%s}",
		t.IDToken != "", t.AccessToken != "", t.RefreshToken != "", t.Expiry.Format(time.RFC3339))
}

// GoString redacts %#v likewise.
func (t Tokens) GoString() string { return t.String() }

// MarshalJSON redacts likewise, so that a Tokens inside a logged or
// encoded value gives nothing away. The store never sees this encoding:
// package session seals tokens in a format of its own.
func (t Tokens) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		IDToken      bool      `json:"id_token"`
		AccessToken  bool      `json:"access_token"`
		RefreshToken bool      `json:"refresh_token"`
		Expiry       time.Time `json:"expiry,omitzero"`
	}{t.IDToken != "", t.AccessToken != "", t.RefreshToken != "", t.Expiry})
}

// MarshalLogObject makes zap.Object(tokens) log which tokens exist, not them.
func (t Tokens) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddBool("id_token", t.IDToken != "")
	enc.AddBool("access_token", t.AccessToken != "")
	enc.AddBool("refresh_token", t.RefreshToken != "")
	if !t.Expiry.IsZero() {
		enc.AddTime("expiry", t.Expiry)
	}
	return nil
}

// ErrGrantRevoked is wrapped by a refresh that the identity provider
// refused for good (OAuth 2.0 invalid_grant: the refresh token was revoked,
// expired or already used), or whose answer contradicts the session (a
// refreshed ID token about someone else). The session the tokens belong to
// must end.
var ErrGrantRevoked = errors.New("the identity provider ended the grant behind the session's tokens")
