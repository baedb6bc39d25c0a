// Package store defines the records caddy-sso persists and the transaction
// interface every backend implements. The embedded default is store/bolt.
//
// Every logical change (one login, one SCIM request, one revocation) is one
// call to Store.Update, so a failure leaves nothing half-written. Update may
// coalesce concurrent calls into one commit and may then run fn more than
// once: fn must depend only on what it reads through the Tx it is given.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns, to be tested with errors.Is.
var (
	ErrNotFound   = errors.New("not found")
	ErrEmailTaken = errors.New("email address belongs to another user")
	ErrLinkTaken  = errors.New("identity provider link belongs to another user")
	ErrReadOnly   = errors.New("write in a read-only transaction")
)

// Sources of a user record.
const (
	SourceJIT   = "jit"
	SourceSCIM  = "scim"
	SourceAdmin = "admin"
)

// User is one person known to the gateway.
type User struct {
	ID        string    `json:"id"` // random, stable, never reused
	Email     string    `json:"email"`
	FirstName string    `json:"first_name"`
	LastName  string    `json:"last_name"`
	Groups    []string  `json:"groups,omitempty"`
	Active    bool      `json:"active"`  // false: deactivated (SCIM or admin); never set true by JIT
	Pending   bool      `json:"pending"` // created with create_as pending; needs admin approval
	Source    string    `json:"source"`  // SourceJIT, SourceSCIM, SourceAdmin
	Links     []Link    `json:"links,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	LastLogin time.Time `json:"last_login,omitzero"`
}

// Link ties a user to one identity provider's uniqueUserId. It is the key
// JIT provisioning looks users up by, compared exactly.
type Link struct {
	IdP     string `json:"idp"`
	Subject string `json:"subject"`
}

// LogoutInfo is what the IdP needs to end its own session (see idp.LogoutInfo).
type LogoutInfo struct {
	IDToken      string `json:"id_token,omitempty"`
	SessionIndex string `json:"session_index,omitempty"`
	NameID       string `json:"name_id,omitempty"`
	NameIDFormat string `json:"name_id_format,omitempty"`
}

// Session is the server-side half of a sign-in. The browser holds only a
// random token; the store keys the record by the token's hash, so a copy of
// the store does not let anyone sign in.
type Session struct {
	Hash     string     `json:"hash"` // hex SHA-256 of the cookie token
	UserID   string     `json:"user_id"`
	IdP      string     `json:"idp"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"` // absolute lifetime
	LastSeen time.Time  `json:"last_seen"`
	Logout   LogoutInfo `json:"logout,omitzero"`
}

// Audit event types.
const (
	EventUserCreated      = "user.created"
	EventUserUpdated      = "user.updated"
	EventUserDeactivated  = "user.deactivated"
	EventUserActivated    = "user.activated"
	EventUserDeleted      = "user.deleted"
	EventLoginSucceeded   = "login.succeeded"
	EventLoginDenied      = "login.denied"
	EventLoginFailed      = "login.failed"
	EventJITConflict      = "jit.conflict"
	EventJITLinked        = "jit.linked"
	EventSessionRevoked   = "session.revoked"
	EventSessionLoggedOut = "session.logged_out"
)

// Event is one line of the audit trail. It never holds a secret, a token or
// an assertion body.
type Event struct {
	Seq     uint64            `json:"seq"` // assigned by the store, increasing
	Time    time.Time         `json:"time"`
	Type    string            `json:"type"`
	IdP     string            `json:"idp,omitempty"`
	UserID  string            `json:"user_id,omitempty"`
	Subject string            `json:"subject,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Detail  map[string]string `json:"detail,omitempty"`
}

// AuditQuery selects audit events. Zero fields do not filter.
type AuditQuery struct {
	After  uint64 // only events with Seq > After
	UserID string
	Type   string
	Since  time.Time
	Until  time.Time
	Limit  int // 0: 100
}

// Tx is one transaction. Methods return ErrNotFound for a missing record and
// ErrReadOnly for a write inside Store.View. Records returned are copies: to
// change one, modify it and Put it back.
type Tx interface {
	User(id string) (*User, error)
	UserByLink(idp, subject string) (*User, error)
	UserByEmail(email string) (*User, error) // case-insensitive
	// PutUser creates or replaces a user and keeps the link and email
	// indexes in step with u.Links and u.Email. It returns ErrEmailTaken or
	// ErrLinkTaken, writing nothing, when another user holds either.
	PutUser(u *User) error
	DeleteUser(id string) error // also deletes the user's sessions
	// ForEachUser visits users in ID order, starting after the given ID.
	ForEachUser(after string, fn func(*User) error) error

	Session(hash string) (*Session, error)
	PutSession(s *Session) error
	DeleteSession(hash string) error
	// DeleteUserSessions removes every session of a user and returns their hashes.
	DeleteUserSessions(userID string) ([]string, error)
	// DeleteExpiredSessions removes sessions whose absolute expiry or idle
	// deadline (LastSeen+idle, when idle > 0) is before now.
	DeleteExpiredSessions(now time.Time, idle time.Duration) ([]string, error)

	// Consume records a single-use ID (an OIDC state, a SAML assertion ID)
	// under kind until the given time. It reports false when the ID was
	// already consumed and has not expired yet.
	Consume(kind, id string, until time.Time) (bool, error)
	// PruneConsumed deletes the single-use IDs whose until is not after now
	// and returns how many it deleted. Consume already treats those as
	// unused; pruning only keeps the store from growing.
	PruneConsumed(now time.Time) (int, error)

	// Secret returns the named secret, creating it with size random bytes
	// the first time.
	Secret(name string, size int) ([]byte, error)

	// Audit appends an event; Seq and, when zero, Time are filled in.
	Audit(e Event) error
	AuditEvents(q AuditQuery) ([]Event, error)
}

// Store is a persistence backend.
type Store interface {
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction; concurrent calls may share
	// one commit (and fn may then run more than once, see the package doc).
	Update(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// ReplayGuard adapts a Store to the idp.ReplayGuard interface: every single-use
// ID is consumed in its own transaction, so it survives restarts.
type ReplayGuard struct{ Store Store }

// ConsumeOnce reports whether (kind, id) is seen for the first time.
func (g ReplayGuard) ConsumeOnce(ctx context.Context, kind, id string, until time.Time) (bool, error) {
	var fresh bool
	err := g.Store.Update(ctx, func(tx Tx) error {
		var err error
		fresh, err = tx.Consume(kind, id, until)
		return err
	})
	return fresh, err
}
