// Package store defines the records caddy-sso persists and the transaction
// interface every backend implements. The embedded default is store/bolt.
//
// Every logical change (one login, one SCIM request, one revocation) is one
// call to Store.Update, so a failure leaves nothing half-written. Update may
// coalesce concurrent calls into one commit and may then run fn more than
// once, and store/bolt may first run it in a rehearsal whose writes write
// nothing: fn must depend only on what it reads through the Tx it is
// given, and not block or act outside it. View may run fn again too
// (store/postgres, after its connection to the database was lost): a
// View's fn must start afresh on each run, and what it hands on outside
// the Tx (store/portable's lines) it must refuse to hand on twice.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
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
	// ErrValueTooLong: a value the store indexes is longer than
	// MaxKeyBytes. Nothing was written.
	ErrValueTooLong = errors.New("value too long to index")
	// ErrInvalidValue: a value the store refuses to keep, such as a
	// userName with a control character (see PutUser). Nothing was written.
	ErrInvalidValue = errors.New("invalid value")
	// ErrControlCharacter and ErrNotUTF8 are the two ErrInvalidValue of
	// CheckIndexed, for the callers that say which rule a value broke
	// (provision's problem, SCIM's detail).
	ErrControlCharacter = fmt.Errorf("has a control character: %w", ErrInvalidValue)
	ErrNotUTF8          = fmt.Errorf("is not UTF-8 text: %w", ErrInvalidValue)
	// ErrOutcomeUnknown: Update sent the commit, but whether it took is not
	// known (the connection to the database was lost before its answer, or
	// the disk failed the sync after bbolt wrote its header): the change
	// may be there for the next reader, or not. Wrapped with the cause; a
	// caller must say "may or may not have been saved", never "nothing
	// was changed".
	ErrOutcomeUnknown = errors.New("the commit's outcome is unknown: the change may or may not have been saved")
)

// MaxKeyBytes is the longest value, in bytes, the store indexes: userName,
// externalId, email, link subject, group name, a session's logout subject
// and session ID, a single-use ID. Longer ones get ErrValueTooLong, writing
// nothing, so that a hostile or broken client gets a clear refusal instead of
// a backend's internal key-size error (bbolt stops at 32 KiB, PostgreSQL's
// B-tree at about 2.7 KB). Real identifiers are far shorter.
const MaxKeyBytes = 1024

// FoldName is how the store compares userNames, emails and group names
// "without regard to case": Unicode NFC, then full case folding
// (golang.org/x/text/cases.Fold), so that "STRASSE", "straße" and a
// decomposed "straße" are one name. Every backend keys its case-insensitive
// indexes on FoldName, so they agree on what collides.
func FoldName(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			// A Caser keeps state between calls: one per call.
			return cases.Fold().String(norm.NFC.String(s))
		}
	}
	// ASCII: NFC is the identity and folding is lower-casing.
	return strings.ToLower(s)
}

// NormalMembers is the form every backend stores a group's member IDs in:
// sorted, without duplicates or empty IDs, nil when none remain.
func NormalMembers(ids []string) []string {
	return normalList(ids, func(s string) bool { return s == "" })
}

// NormalGroupNames is the form of a user's group names in the store, the
// same provision gives a sign-in's groups: sorted, without duplicates or
// blank names, nil when none remain.
func NormalGroupNames(names []string) []string {
	return normalList(names, func(s string) bool { return strings.TrimSpace(s) == "" })
}

// NormalLinks is the form of a user's IdP links in the store: in their
// order, without exact duplicates (which would make an index update
// ambiguous). A link with an empty IdP or subject is an error: no sign-in
// can match it.
func NormalLinks(in []Link) ([]Link, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]Link, 0, len(in))
	seen := make(map[Link]bool, len(in))
	for _, l := range in {
		if l.IdP == "" || l.Subject == "" {
			return nil, errors.New("link with empty idp or subject")
		}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out, nil
}

// NextStamp is the Updated of a record written at now whose last write
// was stamped prev: now, or just after prev when now is not later (a
// clock read before a wait for the record's lock, another instance's clock
// ahead). SCIM's meta.version is Updated, so it changes with every write
// that changes the record, and meta.lastModified never goes back.
func NextStamp(prev, now time.Time) time.Time {
	if now.After(prev) {
		return now
	}
	return prev.Add(time.Nanosecond)
}

// FillTimes gives a record being put its times when the caller left them
// zero: Created becomes now, and Updated becomes Created.
func FillTimes(created, updated *time.Time, now time.Time) {
	if created.IsZero() {
		*created = now
	}
	if updated.IsZero() {
		*updated = *created
	}
}

func normalList(in []string, blank func(string) bool) []string {
	out := slices.DeleteFunc(slices.Clone(in), blank)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// HasControl reports whether s contains a control character (U+0000 to
// U+001F, or U+007F): values that end up in HTTP headers, log lines and
// index keys must not. CheckIndexed refuses them.
func HasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// CheckKey returns an ErrValueTooLong error naming what when v is longer
// than MaxKeyBytes: the rule on a key that is not a person's attribute (a
// session's hash and logout subject, a single-use ID), which the store only
// has to fit in its index. An attribute of a user or group is checked with
// CheckIndexed.
func CheckKey(what, v string) error {
	if len(v) > MaxKeyBytes {
		return fmt.Errorf("%s is %d bytes, at most %d: %w", what, len(v), MaxKeyBytes, ErrValueTooLong)
	}
	return nil
}

// CheckIndexed is the store's one rule on an attribute it indexes (a
// user's userName, email, externalId, display name and link subject, a
// group's display name and externalId), which every layer that takes one
// in applies: JIT (provision), SCIM, and both backends, last, before they
// write anything. So the same value is taken or refused, with the same
// error, on bolt and on PostgreSQL, whether it came by sign-in or by SCIM.
// The value must be
//   - at most MaxKeyBytes long, and so must its FoldName form, the key the
//     case-insensitive indexes hold (folding can triple a length: "ΐ" is
//     2 bytes, folded 6), else ErrValueTooLong;
//   - UTF-8 text, which PostgreSQL's text type insists on, else ErrNotUTF8;
//   - free of control characters (HasControl, NUL included), which would
//     reach headers, log lines and index keys, else ErrControlCharacter.
//
// "" passes: it is an absent value. The error names what, never the value.
func CheckIndexed(what, v string) error {
	if err := CheckKey(what, v); err != nil {
		return err
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s %w", what, ErrNotUTF8)
	}
	if HasControl(v) {
		return fmt.Errorf("%s %w", what, ErrControlCharacter)
	}
	if n := foldedLen(v); n > MaxKeyBytes {
		return fmt.Errorf("%s is %d bytes once case-folded, at most %d: %w", what, n, MaxKeyBytes, ErrValueTooLong)
	}
	return nil
}

// foldedLen is len(FoldName(v)), without folding when v is ASCII (whose
// folded form is as long).
func foldedLen(v string) int {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			return len(FoldName(v))
		}
	}
	return len(v)
}

// Sources of a user record.
const (
	SourceJIT   = "jit"
	SourceSCIM  = "scim"
	SourceAdmin = "admin"
)

// User is one person known to the gateway.
type User struct {
	ID    string `json:"id"` // random, stable, never reused
	Email string `json:"email"`
	// EmailVerified says Email was vouched for: a sign-in that verified
	// the address wrote it, or signed in with it unchanged. link_by_email
	// links only into a user whose address is vouched for, so that a
	// source nobody verifies (a SAML IdP, a multi-tenant one, another
	// IdP's SCIM client) cannot hold an address for whoever later signs in
	// with it verified (provision.Apply). A SCIM write that changes the
	// address clears it. False in users stored before it was kept, until
	// such a sign-in.
	EmailVerified bool   `json:"email_verified,omitempty"`
	FirstName     string `json:"first_name"`
	LastName      string `json:"last_name"`
	// Groups are the group names the upstream sees: those the IdP sent at
	// the last login (JIT) and the defaults, plus the display names of the
	// SCIM groups the user is a member of. PutGroup and DeleteGroup keep the
	// SCIM part in step, so the login hot path never joins anything.
	Groups []string `json:"groups,omitempty"`
	// DefaultGroups are the default_groups the last sign-in that set
	// Groups (creation, or update force) granted, kept so that the next
	// one can tell them apart: when the IdP sends no groups (or an overage
	// pointer) it keeps the stored groups, less these, plus the defaults
	// configured then, so that a default the operator removed goes and a
	// new one comes. A name in them stays in Groups through SCIM group
	// writes (RegroupSCIM). Nil in users stored before it was kept (or
	// written since by such a build): their next sign-in cannot tell their
	// defaults from their other groups, and removes none.
	DefaultGroups []string `json:"default_groups,omitempty"`
	Active        bool     `json:"active"`  // false: deactivated (SCIM or admin); never set true by JIT
	Pending       bool     `json:"pending"` // created with create_as pending; needs admin approval
	// Source is who owns the profile: the creator, until SCIM writes to a
	// JIT user, which makes it SourceSCIM (SCIM then owns the names and
	// email; with update force a login still replaces the token's part of
	// the groups).
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
// that externalId removes the tombstone, as does an administrator's lift
// (account.LiftTx).
type Tombstone struct {
	IdP     string    `json:"idp"`
	Subject string    `json:"subject"`
	UserID  string    `json:"user_id"` // the deleted user, for the audit trail
	Deleted time.Time `json:"deleted"`
	// Home is set on a tombstone a SCIM deletion left at an IdP SCIM does
	// not manage (one the person also signed in through): the deleted
	// user's tombstone at the SCIM-managed IdP. Sign-in at any IdP heeds
	// such a tombstone while its home one stands, so it lasts as long and
	// is lifted with it (docs/scim.md, Deprovisioning). Absent (nil) on
	// every other tombstone, and on those stored before it existed, which
	// a JSON record without the field reads back as.
	Home *Link `json:"home,omitempty"`
}

// Link ties a user to one identity provider's uniqueUserId. It is the key
// JIT provisioning looks users up by, compared exactly.
type Link struct {
	IdP     string `json:"idp"`
	Subject string `json:"subject"`
}

// LogoutInfo is what the IdP needs, or names us by, to end its session. It
// is small: the ID token (needed as id_token_hint) is not here but in the
// session's sealed tokens (Tx.SessionTokens), so that resolving a session
// and housekeeping never read or rewrite it.
type LogoutInfo struct {
	Subject       string `json:"subject,omitempty"`        // SAML NameID; OIDC "sub"
	SubjectFormat string `json:"subject_format,omitempty"` // SAML NameID Format ("" for OIDC)
	// The SAML NameID's qualifiers as issued, for the LogoutRequest ("" for
	// OIDC, and in sessions stored before they were kept). The backends
	// keep them with SubjectFormat, in its field (StoredSubjectFormat).
	NameQualifier   string `json:"name_qualifier,omitempty"`
	SPNameQualifier string `json:"sp_name_qualifier,omitempty"`
	SessionID       string `json:"session_id,omitempty"` // SAML SessionIndex; OIDC "sid"
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
	// AuthTime is when the person last authenticated at the IdP, as the
	// sign-in's assertion said (idp.Assertion.AuthTime), kept for the
	// identity JWT's auth_time; zero when the IdP did not say, and in
	// sessions stored before it was kept.
	AuthTime time.Time `json:"auth_time,omitzero"`
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

// Stamped returns e with a zero Time set to now and any Time in UTC, as a
// backend's Audit stores it: the trail reads in one zone whichever host
// wrote it, so a SIEM collecting from several gets no mixed offsets.
func (e Event) Stamped(now time.Time) Event {
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	return e
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

// UserKey names a unique key of users, for Tx.UserHolding.
type UserKey int

// The unique keys of users, each the lookup of the Tx method it names.
const (
	KeyLink       UserKey = iota + 1 // an (IdP, subject) link, as UserByLink
	KeyEmail                         // as UserByEmail
	KeyUserName                      // as UserByUserName
	KeyExternalID                    // an IdP's externalId, as UserByExternalID
)

// Tx is one transaction. Methods return ErrNotFound for a missing record and
// ErrReadOnly for a write inside Store.View. Records returned are copies: to
// change one, modify it and Put it back. store/storetest checks every
// backend against this contract.
type Tx interface {
	User(id string) (*User, error)
	UserByLink(idp, subject string) (*User, error)
	// UserByEmail finds the user by email, compared by FoldName.
	UserByEmail(email string) (*User, error)
	// PutUser creates or replaces a user and keeps the link, email,
	// userName and (IdP, externalId) indexes in step with the record. It
	// returns ErrEmailTaken, ErrLinkTaken, ErrUserNameTaken or
	// ErrExternalIDTaken when another user holds one, ErrValueTooLong when
	// an indexed value is longer than MaxKeyBytes, and ErrInvalidValue when
	// UserName, ExternalID or DisplayName has a control character (see
	// HasControl), in every case writing nothing. It never changes group
	// memberships: Groups is written as given.
	PutUser(u *User) error
	// DeleteUser also deletes the user's sessions and group memberships,
	// and moves the Updated of each group they were in (NextStamp): the
	// member list is part of the group's SCIM version. It writes no
	// tombstone: that is the caller's decision.
	DeleteUser(id string) error
	// UserForDelete is User, for a transaction that goes on to delete the
	// user: read it with this from the first read on. In PostgreSQL it
	// locks the row as the delete will (FOR UPDATE, where User takes the
	// weaker FOR NO KEY UPDATE), so that no transaction can point a new
	// row at the user meanwhile and the delete never has to upgrade its
	// lock: an upgrade waits for a concurrent group change's foreign-key
	// lock on the user while that change waits for the first lock, a
	// deadlock. In a View it is User.
	UserForDelete(id string) (*User, error)
	// ForEachUser visits users in ID order, starting after the given ID.
	ForEachUser(after string, fn func(*User) error) error

	// UserByUserName finds the user by SCIM userName, compared by FoldName.
	UserByUserName(userName string) (*User, error)
	// UserByExternalID finds the user of idp holding the SCIM externalId,
	// compared exactly.
	UserByExternalID(idp, externalID string) (*User, error)
	// ListUsers returns the users whose IdP is idp, in ID order, from the
	// 1-based position startIndex (values below 1 count as 1), at most
	// count of them, and how many such users there are in all.
	ListUsers(idp string, startIndex, count int) ([]*User, int, error)
	// UsersOfIdP returns those of ids that are users of idp, in ID order,
	// each once. Unlike User in an Update, it locks no row (PostgreSQL):
	// it is the check before PutGroup, which locks every member it touches
	// in ID order, and a lock the check took would come before those, out
	// of that order, so two group changes could deadlock. A user it found
	// may therefore be deleted by another transaction before PutGroup: see
	// there.
	UsersOfIdP(idp string, ids []string) ([]string, error)
	// UserHolding is the read UserByLink, UserByEmail, UserByUserName or
	// UserByExternalID makes (key; idp only for KeyLink and KeyExternalID),
	// for a transaction that only checks who holds a value, or locks the
	// holder afterwards with LockUsers: in PostgreSQL it takes the value's
	// key lock as those do, but no lock on the user's row. A lock on a
	// second user's row, taken while the transaction holds a first one's,
	// is out of the lock order whenever the second's ID is the lower (see
	// LockUsers), so two such transactions could deadlock.
	UserHolding(key UserKey, idp, value string) (*User, error)
	// LockUsers locks the rows of the users ids (missing ones skipped) in
	// ID order, in one statement (PostgreSQL, in an Update; nothing in a
	// View, nor in bolt, which has one writer at a time): the order every
	// transaction that writes more than one user keeps, as a group change
	// does for its members. Read them afterwards with User, which finds
	// them locked.
	LockUsers(ids []string) error

	Group(id string) (*Group, error)
	// GroupByName finds the group of idp with the display name, compared
	// by FoldName.
	GroupByName(idp, displayName string) (*Group, error)
	GroupByExternalID(idp, externalID string) (*Group, error)
	// ListGroups pages through the groups of idp like ListUsers.
	ListGroups(idp string, startIndex, count int) ([]*Group, int, error)
	// PutGroup creates or replaces a group (an empty ID gets a fresh one).
	// Members are sorted and deduplicated, and every member must exist
	// (ErrNotFound otherwise). A member that UsersOfIdP found in the same
	// Update and a concurrent transaction deleted since (PostgreSQL; bolt
	// has one writer) is a conflict, not ErrNotFound: Update runs fn
	// again, and its UsersOfIdP no longer finds the user, so a caller that
	// leaves out the members it does not find (SCIM skips them) succeeds
	// without them. It keeps the name, externalId and member
	// indexes in step, and rewrites the Groups of every user who joined,
	// left, or stayed through a rename. ErrGroupNameTaken and
	// ErrExternalIDTaken leave the store as it was, as do ErrValueTooLong
	// (DisplayName or ExternalID longer than MaxKeyBytes) and
	// ErrInvalidValue (either with a control character).
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

	// Session returns the session stored under hash, with its LastSeen as
	// the last TouchSessions left it.
	Session(hash string) (*Session, error)
	// PutSession creates or replaces a session and keeps its indexes (user,
	// expiry, last seen, logout subject and session ID) in step. The user
	// must exist (ErrNotFound otherwise), so a sign-in racing a deletion
	// cannot leave a session nothing would revoke. A Logout.Subject or
	// SessionID longer than MaxKeyBytes gets ErrValueTooLong. The session's
	// tokens (PutSessionTokens) are kept.
	PutSession(s *Session) error
	// DeleteSession removes a session, its tokens and its index entries;
	// ErrNotFound when there is none.
	DeleteSession(hash string) error
	// SessionTokens returns the sealed token blob of a session (nil, nil
	// when it has none; ErrNotFound when the session does not exist). The
	// blob is opaque to the store: package session seals it (AES-GCM with
	// a key from Secret). Kept apart from the session record so that
	// resolving a session and housekeeping never read or rewrite it.
	SessionTokens(hash string) ([]byte, error)
	// PutSessionTokens replaces the blob (nil or empty deletes it).
	// ErrNotFound when the session does not exist. Deleting a session
	// deletes its blob.
	PutSessionTokens(hash string, sealed []byte) error
	// UserSessions returns every session of a user, in hash order, from
	// the user's session index (for the admin API and the per-user cap;
	// not the hot path).
	UserSessions(userID string) ([]*Session, error)
	// DeleteUserSessions removes every session of a user and returns their hashes.
	DeleteUserSessions(userID string) ([]string, error)
	// LockSessions is for a transaction that goes on to delete some of
	// several sessions one at a time (DeleteSession): the sessions of
	// userID ("" for none) and those hashes names (missing ones skipped).
	// In PostgreSQL it locks them all in one statement, in hash order, the
	// order TouchSessions and every other statement on several sessions
	// lock in; deleting them one at a time, each locked as it goes, in
	// another order deadlocks with a flush of their last-seen times. It
	// reads and writes nothing, and in a View, or in a store with one
	// writer at a time (bbolt), it does nothing.
	LockSessions(userID string, hashes []string) error
	// SessionsBySubject returns the sessions of idp whose Logout.Subject is
	// subject, compared exactly, from an index: a SAML IdP's LogoutRequest
	// (and an OIDC back-channel logout) names the user by subject, not by
	// user ID.
	SessionsBySubject(idp, subject string) ([]*Session, error)
	// SessionsBySessionID likewise for Logout.SessionID (SAML
	// SessionIndex, OIDC "sid").
	SessionsBySessionID(idp, sessionID string) ([]*Session, error)
	// DeleteExpiredSessions removes AT MOST limit sessions whose absolute
	// expiry is before now, or whose idle deadline is (when idle > 0: the
	// later of LastSeen and Created, plus idle), and returns their hashes.
	// Its cost is proportional to what it removes (expiry and last-seen
	// indexes), never to the store size; callers loop in separate
	// transactions until fewer than limit come back. limit < 1 is an error.
	DeleteExpiredSessions(now time.Time, idle time.Duration, limit int) ([]string, error)
	// TouchSessions moves LastSeen forward (never back) for the sessions
	// named; missing sessions are skipped. It rewrites only what the idle
	// timeout needs, not the session record.
	TouchSessions(touches []SessionTouch) error

	// Consume records a single-use ID (an OIDC state, a SAML assertion ID)
	// under kind until the given time. It reports false when the ID was
	// already consumed and has not expired yet. An ID longer than
	// MaxKeyBytes gets ErrValueTooLong.
	Consume(kind, id string, until time.Time) (bool, error)
	// PruneConsumed deletes up to limit single-use IDs whose until is not
	// after now, earliest first, and returns how many it deleted. Consume
	// already treats those as unused; pruning only keeps the store from
	// growing. Its cost is proportional to what it deletes. limit < 1 is
	// an error.
	PruneConsumed(now time.Time, limit int) (int, error)
	// ForEachConsumed visits every single-use ID (for backup and
	// migration), in no promised order.
	ForEachConsumed(fn func(kind, id string, until time.Time) error) error

	// Secret returns the named secret, creating it with size random bytes
	// the first time.
	Secret(name string, size int) ([]byte, error)
	// LoadOrStoreSecret returns the named secret if it exists; otherwise
	// it stores value and returns a copy of it. With an empty value it only
	// looks, returning ErrNotFound when there is none (and so works in a
	// View). It is for secrets the caller makes, such as a generated SAML
	// SP key pair, whose slow generation belongs outside the transaction.
	LoadOrStoreSecret(name string, value []byte) ([]byte, error)

	// ForEachSecret visits every secret in name order (for backup and
	// migration). value is a copy.
	ForEachSecret(fn func(name string, value []byte) error) error
	// DeleteSecret removes the named secret; ErrNotFound when there is
	// none (like DeleteUser, DeleteGroup and DeleteSession: callers that
	// race another instance deleting it treat that as done). A later
	// Secret or LoadOrStoreSecret creates it afresh. It is for retiring
	// rotated keys and for restore replacing the target's secrets.
	DeleteSecret(name string) error

	// Audit appends an event; Seq and, when zero, Time are filled in, and
	// Time is stored in UTC (Event.Stamped).
	Audit(e Event) error
	AuditEvents(q AuditQuery) ([]Event, error)
	// PruneAudit deletes up to limit of the oldest events (in Seq order)
	// whose Time is before `before`, and their index entries, and returns
	// how many. It stops at the first event not before `before`, so its
	// cost is proportional to what it deletes, but passes over events
	// stamped after now: written while the host's clock ran ahead (before
	// NTP stepped it back), they would hold back every later event's
	// retention until their own time came. limit < 1 is an error.
	PruneAudit(before, now time.Time, limit int) (int, error)
	// ImportAuditEvent appends an event keeping its Seq and Time (restore
	// and backend migration only). Seq must be greater than every stored
	// one, else an error; later Audit calls number after it.
	ImportAuditEvent(e Event) error

	// ForEachGroup visits groups in ID order, starting after the given ID.
	// Like ForEachUser, fn must not write while it iterates.
	ForEachGroup(after string, fn func(*Group) error) error
	// ForEachSession visits sessions in hash order, starting after the
	// given hash (for backup and migration; their tokens are read with
	// SessionTokens).
	ForEachSession(after string, fn func(*Session) error) error
	// ForEachTombstone visits every tombstone, in (IdP, subject) order.
	ForEachTombstone(fn func(*Tombstone) error) error
	// Counts returns the number of records of each kind, without a scan
	// (for migration's check and for metrics).
	Counts() (Counts, error)
}

// SessionTouch says a session was used at At (TouchSessions).
type SessionTouch struct {
	Hash string
	At   time.Time
}

// Counts is the number of records of each kind in a store.
type Counts struct {
	Users, Groups, Sessions, Tombstones, AuditEvents int
}

// Store is a persistence backend.
type Store interface {
	// View runs fn in a read-only transaction over one consistent
	// snapshot; fn may run more than once (see the package doc).
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction; concurrent calls may share
	// one commit (and fn may then run more than once, see the package doc).
	// Background work passes a ctx marked by Background, so that it yields
	// to sign-ins.
	Update(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Broadcaster is implemented by stores that several Caddy instances share
// (PostgreSQL). What one instance ends (logout, revocation, deactivation,
// deletion) the others must drop from their session caches within a
// second. store/bolt does not implement it: one process owns a bolt file.
type Broadcaster interface {
	// Broadcast tells the other instances about a change that has committed.
	Broadcast(ctx context.Context, inv Invalidation) error
	// Listen calls fn for each Invalidation another instance broadcasts,
	// and with Invalidation{All: true} whenever notifications may have
	// been missed (after the connection was lost and came back), until ctx
	// ends. While disconnected, callers fall back to the cache TTL.
	Listen(ctx context.Context, fn func(Invalidation))
}

// TxBroadcaster is implemented by the Tx of a Broadcaster whose
// transactions can carry an invalidation (PostgreSQL, which delivers a
// NOTIFY at COMMIT and drops it on a rollback): the change and the word
// about it then take one commit, where Broadcast after the commit is a
// write transaction of its own.
type TxBroadcaster interface {
	// BroadcastAtCommit tells the other instances about inv when the
	// transaction commits, and reports whether it will: false, with no
	// error and the transaction intact, when the store refused the notice
	// (the caller then broadcasts after the commit).
	BroadcastAtCommit(inv Invalidation) (bool, error)
}

// FileStore is implemented by a store kept in one local file (store/bolt).
// The store holds its file open, so it does not notice when the file is
// removed or replaced under it: it writes on to the old file, and what it
// writes is lost when it stops (docs/operations.md, "Where the store
// lives"). gateway.Housekeeper asks these to say so in the log.
type FileStore interface {
	// CreatedNew reports whether opening the store created a new, empty
	// store. It tells the first caller only: a config reload shares the
	// open store and must not say so again.
	CreatedNew() bool
	// CheckFile returns nil while the store's path names the file the
	// store has open, and otherwise an error that names the path and says
	// what to do.
	CheckFile() error
	// Path is the path the store was opened at.
	Path() string
}

// Invalidation names cached state another instance must drop.
type Invalidation struct {
	Sessions []string // session hashes
	Users    []string // user IDs: all their sessions, and their profile
	All      bool     // drop everything
}

// Empty reports whether inv names nothing to drop: nothing to tell.
func (inv Invalidation) Empty() bool { return len(inv.Sessions)+len(inv.Users) == 0 && !inv.All }

// PlainIDTokenBlob is the session token blob (Tx.SessionTokens) that holds a
// bare ID token instead of sealed tokens: a zero byte, then the token. It is
// what a schema upgrade makes of a session stored before tokens were sealed,
// whose logout data carried the ID token in clear; package session reads it
// as tokens with only an ID token. Sealed blobs never start with a zero byte.
func PlainIDTokenBlob(idToken string) []byte {
	return append([]byte{0}, idToken...)
}

// Secrets adapts a Store to the idp.Secrets interface: key material a
// protocol provider generates (a SAML SP key pair) is kept in the store, so
// that every instance sharing it uses the same.
type Secrets struct{ Store Store }

// LoadOrStore returns the named secret, or stores what generate makes.
func (s Secrets) LoadOrStore(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	var data []byte
	err := s.Store.View(ctx, func(tx Tx) error {
		var err error
		data, err = tx.LoadOrStoreSecret(name, nil)
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		return data, err
	}
	// Generate outside the transaction (key generation is slow, and
	// Update may run its function twice); the first stored wins.
	fresh, err := generate()
	if err != nil {
		return nil, err
	}
	err = s.Store.Update(ctx, func(tx Tx) error {
		var err error
		data, err = tx.LoadOrStoreSecret(name, fresh)
		return err
	})
	return data, err
}
