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
	"encoding/json"
	"errors"
	"time"
)

// Errors every backend returns, to be tested with errors.Is.
var (
	ErrNotFound   = errors.New("not found")
	ErrEmailTaken = errors.New("email address belongs to another user")
	ErrLinkTaken  = errors.New("identity provider link belongs to another user")
	ErrReadOnly   = errors.New("write in a read-only transaction")
	// ErrUserNameTaken: another user holds the SCIM userName (compared
	// without regard to case).
	ErrUserNameTaken = errors.New("user name belongs to another user")
	// ErrExternalIDTaken: another user (or group) of the same identity
	// provider holds the SCIM externalId.
	ErrExternalIDTaken = errors.New("external ID belongs to another record of the same identity provider")
	// ErrGroupNameTaken: another group of the same identity provider holds
	// the display name (compared without regard to case).
	ErrGroupNameTaken = errors.New("group name belongs to another group")
)

// Sources of a user record.
const (
	SourceJIT   = "jit"
	SourceSCIM  = "scim"
	SourceAdmin = "admin"
)

// User is one person known to the gateway.
type User struct {
	ID        string `json:"id"` // random, stable, never reused
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	// Groups are the group names the upstream sees: those the IdP sent at
	// the last login (JIT) and the defaults, plus the display names of the
	// SCIM groups the user is a member of. PutGroup and DeleteGroup keep the
	// SCIM part in step, so the login hot path never joins anything.
	Groups  []string `json:"groups,omitempty"`
	Active  bool     `json:"active"`  // false: deactivated (SCIM or admin); never set true by JIT
	Pending bool     `json:"pending"` // created with create_as pending; needs admin approval
	// Source is who owns the profile: the creator, until SCIM writes to a
	// JIT user, which makes it SourceSCIM (SCIM then owns the attributes and
	// a login only records itself).
	Source    string    `json:"source"`
	Links     []Link    `json:"links,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	LastLogin time.Time `json:"last_login,omitzero"`

	// The fields below come from SCIM 2.0 (provision/scim). JIT sets
	// UserName, IdP and ExternalID on creation; the rest only SCIM writes.

	// UserName is SCIM's userName: unique across the store, compared
	// without regard to case.
	UserName string `json:"user_name,omitempty"`
	// IdP is the identity provider configuration the user belongs to: the
	// one whose SCIM client created them or whose login did. It scopes
	// ExternalID and decides which SCIM endpoint sees the user.
	IdP string `json:"idp,omitempty"`
	// ExternalID is SCIM's externalId, which the set-up guide maps to the
	// IdP's uniqueUserId (Entra objectId, Okta user id): unique within IdP,
	// compared exactly. A login whose subject has no link yet adopts the
	// user holding that ExternalID.
	ExternalID  string `json:"external_id,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	// Emails are the addresses SCIM sent, in its order. When present,
	// Email is the primary one (else the first work one, else the first),
	// which is the one the email index and JIT conflict checks use.
	Emails []Email `json:"emails,omitempty"`
	// SCIMAttributes is a JSON object holding the SCIM attributes that
	// have no field of their own (title, phoneNumbers, the enterprise
	// extension, name.formatted, ...), so that what an IdP wrote reads
	// back unchanged and its next sync sees no difference. Opaque to the
	// store.
	SCIMAttributes json.RawMessage `json:"scim_attributes,omitempty"`
}

// Email is one address of a user, as SCIM carries it.
type Email struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
	Display string `json:"display,omitempty"`
}

// Group is a SCIM group. Its members' Groups carry its display name, so
// the upstream groups header shows SCIM groups without a join.
type Group struct {
	ID          string `json:"id"`  // random, stable, never reused
	IdP         string `json:"idp"` // the IdP configuration whose SCIM client owns it
	DisplayName string `json:"display_name"`
	ExternalID  string `json:"external_id,omitempty"` // unique within IdP
	// Members are user IDs, sorted and without duplicates once stored.
	Members []string  `json:"members,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// GroupRef names one group a user is a member of.
type GroupRef struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
}

// Tombstone marks an identity that SCIM deleted, keyed on (IdP, subject)
// where subject is the deleted user's externalId or one of their login
// subjects at that IdP. While SCIM is enabled for the IdP, JIT does not
// re-create a user for a tombstoned subject; a later SCIM create with
// that externalId removes the tombstone.
type Tombstone struct {
	IdP     string    `json:"idp"`
	Subject string    `json:"subject"`
	UserID  string    `json:"user_id"` // the deleted user, for the audit trail
	Deleted time.Time `json:"deleted"`
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
	EventGroupCreated     = "group.created"
	EventGroupUpdated     = "group.updated"
	EventGroupDeleted     = "group.deleted"
	// EventGroupsOverage: the IdP sent a pointer to the user's groups
	// (Entra's groups.link or _claim_names) instead of the groups.
	EventGroupsOverage = "idp.groups_overage"
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
	// PutUser creates or replaces a user and keeps the link, email,
	// userName and (IdP, externalId) indexes in step with the record. It
	// returns ErrEmailTaken, ErrLinkTaken, ErrUserNameTaken or
	// ErrExternalIDTaken, writing nothing, when another user holds one.
	// It never changes group memberships: Groups is written as given.
	PutUser(u *User) error
	// DeleteUser also deletes the user's sessions and group memberships.
	// It writes no tombstone: that is the caller's decision.
	DeleteUser(id string) error
	// ForEachUser visits users in ID order, starting after the given ID.
	ForEachUser(after string, fn func(*User) error) error

	// UserByUserName finds the user by SCIM userName, ignoring case.
	UserByUserName(userName string) (*User, error)
	// UserByExternalID finds the user of idp holding the SCIM externalId,
	// compared exactly.
	UserByExternalID(idp, externalID string) (*User, error)
	// ListUsers returns the users whose IdP is idp, in ID order, from the
	// 1-based position startIndex (values below 1 count as 1), at most
	// count of them, and how many such users there are in all.
	ListUsers(idp string, startIndex, count int) ([]*User, int, error)

	Group(id string) (*Group, error)
	// GroupByName finds the group of idp with the display name, ignoring case.
	GroupByName(idp, displayName string) (*Group, error)
	GroupByExternalID(idp, externalID string) (*Group, error)
	// ListGroups pages through the groups of idp like ListUsers.
	ListGroups(idp string, startIndex, count int) ([]*Group, int, error)
	// PutGroup creates or replaces a group (an empty ID gets a fresh one).
	// Members are sorted and deduplicated, and every member must exist
	// (ErrNotFound otherwise). It keeps the name, externalId and member
	// indexes in step, and rewrites the Groups of every user who joined,
	// left, or stayed through a rename. ErrGroupNameTaken and
	// ErrExternalIDTaken leave the store as it was.
	PutGroup(g *Group) error
	// DeleteGroup removes the group and its name from its members' Groups.
	DeleteGroup(id string) error
	// GroupsOfUser lists the groups the user is a member of, in group ID
	// order, from the member index alone.
	GroupsOfUser(userID string) ([]GroupRef, error)

	// Tombstone returns the tombstone of (idp, subject), or ErrNotFound.
	Tombstone(idp, subject string) (*Tombstone, error)
	PutTombstone(t *Tombstone) error
	// DeleteTombstone removes the tombstone; a missing one is no error.
	DeleteTombstone(idp, subject string) error

	Session(hash string) (*Session, error)
	PutSession(s *Session) error
	DeleteSession(hash string) error
	// UserSessions returns every session of a user, in hash order, from
	// the user's session index (for the admin API; not the hot path).
	UserSessions(userID string) ([]*Session, error)
	// DeleteUserSessions removes every session of a user and returns their hashes.
	DeleteUserSessions(userID string) ([]string, error)
	// DeleteExpiredSessions removes sessions whose absolute expiry or idle
	// deadline (LastSeen+idle, when idle > 0) is before now.
	DeleteExpiredSessions(now time.Time, idle time.Duration) ([]string, error)
	// SessionsByNameID returns the sessions of idp whose Logout.NameID is
	// nameID (compared exactly), from an index: a SAML IdP's LogoutRequest
	// names the user by NameID (and SessionIndex), not by user ID.
	SessionsByNameID(idp, nameID string) ([]*Session, error)

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
	// LoadOrStoreSecret returns the named secret if it exists; otherwise
	// it stores value and returns a copy of it. With an empty value it only
	// looks, returning ErrNotFound when there is none (and so works in a
	// View). It is for secrets the caller makes, such as a generated SAML
	// SP key pair, whose slow generation belongs outside the transaction.
	LoadOrStoreSecret(name string, value []byte) ([]byte, error)

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
