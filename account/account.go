// Package account is the one implementation of what is done to an account
// once it exists: deactivating, activating and deleting it, and ending its
// sessions, whoever asks: an administrator (the admin API, `caddy sso`
// online or offline), the IdP's SCIM client (provision/scim), or the IdP
// itself ending a session (SAML Single Logout; OIDC back-channel logout
// later). Each rule is written here once, so the callers cannot drift
// apart (docs/operations.md describes them for operators):
//
//   - Deactivate sets Active=false and deletes the user's sessions in the
//     same transaction, so no request gets through between the two. It
//     leaves Pending as it is: a pending user disabled (a request
//     refused) stays one never approved, shown as disabled, and a later
//     Activate approves them, audited so (detail approved=true).
//   - Activate sets Active=true and clears Pending. An administrator's
//     "enable" and SCIM's active=true are the same decision, "this person
//     may sign in", and a pending user is one waiting for exactly that.
//   - Delete removes the user, their sessions and group memberships, and
//     leaves a tombstone for each of their identities at an IdP that SCIM
//     manages: their externalId and their login subjects there. JIT then
//     refuses those identities (provision's "deprovisioned") instead of
//     creating the user anew at the next sign-in, whether SCIM, an
//     administrator or the offline CLI deleted them. A SCIM create with
//     that externalId clears the tombstone, and so does an administrator's
//     lift (LiftTx, `caddy sso tombstones lift`). Deleted by SCIM, the user's
//     login subjects at other IdPs get tombstones too, which sign-in at
//     any IdP heeds while the one at the SCIM-managed IdP stands
//     (followingTombstones).
//   - EndSessions ends every session of a user; EndIdPSessions ends the
//     sessions an IdP names by subject and, optionally, session ID, and
//     IdPLogout hands it to the identity providers (idp.SessionEnder),
//     using a logout message up in the transaction that ends its sessions.
//
// Audit events say who acted (ByAdmin, BySCIM) and why sessions ended (the
// Reason constants), and carry identifiers only, never an email or any
// other profile value: the audit trail outlives the profile it would copy.
// One model for every operation: it writes its own event (user.deactivated,
// user.deleted, ...), and every operation that ends sessions also writes
// one session.revoked event, its Reason the operation (deactivated,
// deleted, revoked) and its detail the number ended, so that `audit --type
// session.revoked` finds every session an administrator or SCIM ended.
// Sessions that had ended already (past their lifetime, idle; see
// SessionJudge) are deleted with the others but neither counted nor
// audited: ending them ended nothing.
//
// Every operation has a Tx form, for a caller that combines several in one
// transaction (a SCIM PATCH that changes a profile and deactivates), and a
// convenience form that runs its own Store.Update. Caches learn what ended
// only after the commit: the Tx forms record into a Change, which the
// caller hands to Committed once its transaction has committed.
package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// Who asked for a change: the Reason of user.* events and the "by" detail
// of session.revoked events.
const (
	// ByAdmin is an administrator: the admin API or `caddy sso`, online or
	// offline.
	ByAdmin = "admin"
	// BySCIM is the SCIM client of the user's IdP.
	BySCIM = "scim"
)

// Why sessions ended: the Reason of session.revoked and session.logged_out
// events written here, and of the log lines that go with them.
const (
	// ReasonDeactivated: the user was deactivated (the event's "by" detail
	// says by whom).
	ReasonDeactivated = "deactivated"
	// ReasonRevoked: an administrator ended the user's sessions.
	ReasonRevoked = "revoked"
	// ReasonDeleted: the user was deleted (the event's "by" detail says
	// by whom).
	ReasonDeleted = "deleted"
	// ReasonIdPLogout: the IdP ended its session and named ours (SAML
	// Single Logout, OIDC back-channel logout).
	ReasonIdPLogout = "idp_logout"
)

// EventStoreBackedUp records that a backup of the whole store was handed
// out. A backup holds every key the store keeps (the SAML SP private keys,
// the session-token and flow-cookie keys), so who took one, and when, is
// part of the audit trail. The store package names the events the gateway
// writes; this one is written only here.
const EventStoreBackedUp = "store.backed_up"

// EventStoreKeysRotated records a rotation of the store's keys (package
// keys): its detail names the step (rotate, finish), the keys and how it
// was asked for, never a key's value.
const EventStoreKeysRotated = "store.keys_rotated"

// EventStoreRestored and EventStoreMigrated record that the store's whole
// content, audit trail included, was replaced offline by a backup's
// (caddy sso restore) or another store's (caddy sso migrate). They are the
// first event after the import: the events before them are the source's,
// and those the replaced store had written since are gone, which without
// them nothing in the trail would tell.
const (
	EventStoreRestored = "store.restored"
	EventStoreMigrated = "store.migrated"
)

// ViaAdminAPI and ViaOffline are the via detail of events written through
// Caddy's admin API and by the CLI on a stopped instance's store
// (Service.Via, AuditBackup, keys.Options.Via, restore and migrate): one
// spelling for the trail's readers to filter on.
const (
	ViaAdminAPI = "admin_api"
	ViaOffline  = "offline"
)

// Cache is what the operations tell, once their transaction has committed,
// so that no cached copy outlives what the store no longer has.
// *session.Manager satisfies it.
type Cache interface {
	// ForgetUsers drops every cached session of the users, so that the
	// next request reads the user and the session afresh. Other instances
	// hear of all of them at once (a SCIM change to a large group forgets
	// every member).
	ForgetUsers(userIDs []string)
	// ForgetSessions drops cached sessions, named by store.Session.Hash.
	ForgetSessions(hashes []string)
}

// SessionJudge says, when the Cache has it, when a stored session ends and
// whether it has ended, by the running gateway's session config (lifetime,
// idle timeout): gateway.Live has it, by way of session.Manager.Ends. A
// session the store holds may have ended (past its lifetime, idle) and
// wait for the sweep: nobody can use it, so the admin API does not list
// or count it, and ending it is not counted or audited. A
// *session.Manager alone does not have it, on purpose: the offline CLI
// makes one with no config (to tell running instances what ended), whose
// lifetime and idle timeout are the defaults, not the operator's.
type SessionJudge interface {
	SessionEnds(s *store.Session) (end time.Time, ended bool)
}

// Service runs the account operations over a store.
type Service struct {
	Store store.Store
	// Cache is told what ended after each commit; nil offline (no running
	// Caddy, so nothing is cached).
	Cache Cache
	// SCIMManaged reports whether SCIM provisions the named IdP (its
	// tombstones are then honoured at sign-in). Nil means the set is not
	// known, as in the offline CLI, which reads no config: Delete then
	// leaves tombstones at every IdP. Sign-in consults tombstones only at
	// SCIM-managed IdPs, so that matters only for an IdP where SCIM is
	// switched on later, and a SCIM create clears them there.
	SCIMManaged func(idp string) bool
	// Logger receives one line per operation; nil: no logs.
	Logger *zap.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Via, when set, is the detail via of the events the user operations
	// write (audit): how they were asked for, ViaOffline for the CLI on a
	// stopped instance's store, whose writes the trail would otherwise
	// not tell from the admin API's (store.backed_up and
	// store.keys_rotated carry it too).
	Via string
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// sessionEnd says when a stored session ends and whether it has
// (SessionJudge). Without a judge (offline: no config is read, so neither
// the lifetime nor the idle timeout is known) only the stored Expires is
// held against now: a session shortened by a later lifetime, or idle, is
// then shown and counted until the sweep deletes it.
func (s *Service) sessionEnd(ss *store.Session) (end time.Time, ended bool) {
	if j, ok := s.Cache.(SessionJudge); ok {
		return j.SessionEnds(ss)
	}
	return ss.Expires, !s.now().Before(ss.Expires)
}

func (s *Service) scimManaged(idp string) bool {
	return s.SCIMManaged == nil || s.SCIMManaged(idp)
}

// NotFoundError says that no user has the ID. It matches store.ErrNotFound
// and reads well on its own: the admin API and the CLI show it as it is,
// where the store's own error would name its backend.
type NotFoundError struct{ ID string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("user %q not found", e.ID) }

// Is makes errors.Is(err, store.ErrNotFound) hold, so callers that test for
// the store's error need not know this one.
func (e *NotFoundError) Is(target error) bool { return target == store.ErrNotFound }

// user reads a user in tx.
func user(tx store.Tx, id string) (*store.User, error) { return readUser(tx.User, id) }

// userForDelete is user for a transaction that goes on to delete the user:
// it reads with the lock the delete needs (see store.Tx.UserForDelete).
func userForDelete(tx store.Tx, id string) (*store.User, error) {
	return readUser(tx.UserForDelete, id)
}

func readUser(read func(string) (*store.User, error), id string) (*store.User, error) {
	u, err := read(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &NotFoundError{ID: id}
	}
	if err != nil {
		return nil, fmt.Errorf("read user %s: %w", id, err)
	}
	return u, nil
}

// Change collects what the Tx-level operations of one transaction did that
// must happen after the commit: cache entries to drop and lines to log.
// Store.Update may run a transaction function more than once, so start
// each run with a zero Change and hand the last one to Committed.
type Change struct {
	users    []string
	sessions []string
	logs     []logLine
}

type logLine struct {
	msg    string
	fields []zap.Field
}

// ForgetUser asks for a user's cached sessions to be dropped after the
// commit (for a change made outside this package, such as a SCIM profile
// or group update, that the next request must see).
func (c *Change) ForgetUser(id string) {
	c.users = append(c.users, id) // twice does no harm; a check would cost a scan per member of a large group
}

// ForgetUsers is ForgetUser for several users.
func (c *Change) ForgetUsers(ids []string) {
	c.users = append(c.users, ids...)
}

func (c *Change) log(msg string, fields ...zap.Field) {
	c.logs = append(c.logs, logLine{msg, fields})
}

// Committed runs once the transaction that filled c has committed: it
// drops what c names from the cache and logs what was done.
func (s *Service) Committed(c *Change) {
	s.forget(c)
	if s.Logger != nil {
		for _, l := range c.logs {
			s.Logger.Info(l.msg, l.fields...)
		}
	}
}

// Update runs op in one store transaction, for a caller that combines
// account operations (their Tx forms) with writes of its own, and hands
// the Change to Committed once the transaction has committed.
func (s *Service) Update(ctx context.Context, op func(tx store.Tx, c *Change) error) error {
	var c Change
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		c = Change{}
		return op(tx, &c)
	})
	if errors.Is(err, store.ErrOutcomeUnknown) {
		// The change may have committed (the answer to its COMMIT was
		// lost): what it ended must not live on in a cache, here or on
		// another instance, for up to CacheTTL. Forgetting is safe either
		// way: the next request reads the store, which has the answer. Its
		// lines are not logged: they would say what may not have happened
		// (the audit trail has it if it did).
		s.forget(&c)
	}
	if err != nil {
		return err
	}
	s.Committed(&c)
	return nil
}

// forget drops what c names from the cache, here and on the other
// instances sharing the store.
func (s *Service) forget(c *Change) {
	if s.Cache == nil {
		return
	}
	if len(c.users) > 0 {
		s.Cache.ForgetUsers(c.users)
	}
	if len(c.sessions) > 0 {
		s.Cache.ForgetSessions(c.sessions)
	}
}

// Result is what an operation on one user did.
type Result struct {
	// User is the user as written, or as found when nothing changed; for
	// Delete, as it was before.
	User *store.User
	// Changed reports that the operation wrote anything (an operation that
	// finds the user as asked writes and audits nothing).
	Changed bool
	// Sessions is the number of sessions ended.
	Sessions int
	// Tombstones is the number of tombstones Delete left.
	Tombstones int
}

// event is an audit event about u at the time of its operation:
// identifiers only, never profile values. The events of one operation (a
// deactivation and the sessions it ended) share the time.
func event(typ string, u *store.User, reason string, at time.Time) store.Event {
	return store.Event{Time: at, Type: typ, IdP: u.IdP, UserID: u.ID, Subject: u.ExternalID, Reason: reason}
}

// audit writes ev, an event of a user operation, with the detail via when
// s.Via is set.
func (s *Service) audit(tx store.Tx, ev store.Event) error {
	if s.Via != "" {
		if ev.Detail == nil {
			ev.Detail = map[string]string{}
		}
		ev.Detail["via"] = s.Via // each event's Detail is its own
	}
	if err := tx.Audit(ev); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// endUserSessions deletes every session of u and audits it as a
// session.revoked event with reason, when any of them had not ended.
func (s *Service) endUserSessions(tx store.Tx, u *store.User, reason, by string) (int, error) {
	n, err := s.deleteUserSessions(tx, u)
	if err != nil {
		return 0, err
	}
	return n, s.auditRevoked(tx, u, reason, by, n, s.now())
}

// deleteUserSessions deletes every session of u and counts those that had
// not ended (sessionEnd): one past its lifetime or idle, nobody could use,
// and ending it ends nothing. It is deleted all the same, for the sweep.
func (s *Service) deleteUserSessions(tx store.Tx, u *store.User) (int, error) {
	sessions, err := tx.UserSessions(u.ID)
	if err != nil {
		return 0, fmt.Errorf("end sessions of user %s: %w", u.ID, err)
	}
	var ended map[string]bool
	for _, ss := range sessions {
		if _, done := s.sessionEnd(ss); done {
			if ended == nil {
				ended = make(map[string]bool)
			}
			ended[ss.Hash] = true
		}
	}
	hashes, err := tx.DeleteUserSessions(u.ID)
	if err != nil {
		return 0, fmt.Errorf("end sessions of user %s: %w", u.ID, err)
	}
	// Counted by what was deleted, less what had ended: a session signed
	// in since the read (a store that does not lock the user's sessions
	// for it) counts as the live session it is.
	n := 0
	for _, h := range hashes {
		if !ended[h] {
			n++
		}
	}
	return n, nil
}

// auditRevoked writes the session.revoked event of n sessions of u ended
// for reason at at, none when n is 0.
func (s *Service) auditRevoked(tx store.Tx, u *store.User, reason, by string, n int, at time.Time) error {
	if n == 0 {
		return nil
	}
	ev := event(store.EventSessionRevoked, u, reason, at)
	ev.Detail = map[string]string{"by": by, "sessions": strconv.Itoa(n)}
	return s.audit(tx, ev)
}

// DeactivateTx deactivates the user and ends their sessions in tx. A user
// already inactive is left as they are.
func (s *Service) DeactivateTx(tx store.Tx, c *Change, id, by string) (*Result, error) {
	u, err := user(tx, id)
	if err != nil {
		return nil, err
	}
	if !u.Active {
		return &Result{User: withoutSCIMPassword(u)}, nil
	}
	u = withoutSCIMPassword(u) // dropped from the store by this write
	now := s.now()
	u.Active, u.Updated = false, store.NextStamp(u.Updated, now)
	if err := tx.PutUser(u); err != nil {
		return nil, fmt.Errorf("deactivate user %s: %w", id, err)
	}
	// The user's event first, then the sessions it ended, as in the trail
	// before the user's event carried the count.
	n, err := s.deleteUserSessions(tx, u)
	if err != nil {
		return nil, err
	}
	ev := event(store.EventUserDeactivated, u, by, now)
	ev.Detail = map[string]string{"sessions": strconv.Itoa(n)}
	if err := s.audit(tx, ev); err != nil {
		return nil, err
	}
	if err := s.auditRevoked(tx, u, ReasonDeactivated, by, n, now); err != nil {
		return nil, err
	}
	c.ForgetUser(id)
	c.log("user deactivated", zap.String("user_id", id), zap.String("idp", u.IdP), zap.String("by", by), zap.Int("sessions_ended", n))
	return &Result{User: u, Changed: true, Sessions: n}, nil
}

// Deactivate is DeactivateTx in a transaction of its own.
func (s *Service) Deactivate(ctx context.Context, id, by string) (*Result, error) {
	return inTx(ctx, s, func(tx store.Tx, c *Change) (*Result, error) { return s.DeactivateTx(tx, c, id, by) })
}

// ActivateTx lets the user sign in: Active is set and Pending cleared (see
// the package doc). An active user who is not pending is left as they are.
func (s *Service) ActivateTx(tx store.Tx, c *Change, id, by string) (*Result, error) {
	u, err := user(tx, id)
	if err != nil {
		return nil, err
	}
	if u.Active && !u.Pending {
		return &Result{User: withoutSCIMPassword(u)}, nil
	}
	u = withoutSCIMPassword(u) // dropped from the store by this write
	approved := u.Pending
	now := s.now()
	u.Active, u.Pending, u.Updated = true, false, store.NextStamp(u.Updated, now)
	if err := tx.PutUser(u); err != nil {
		return nil, fmt.Errorf("activate user %s: %w", id, err)
	}
	ev := event(store.EventUserActivated, u, by, now)
	if approved {
		ev.Detail = map[string]string{"approved": "true"}
	}
	if err := s.audit(tx, ev); err != nil {
		return nil, err
	}
	c.ForgetUser(id)
	c.log("user activated", zap.String("user_id", id), zap.String("idp", u.IdP), zap.String("by", by), zap.Bool("approved", approved))
	return &Result{User: u, Changed: true}, nil
}

// Activate is ActivateTx in a transaction of its own.
func (s *Service) Activate(ctx context.Context, id, by string) (*Result, error) {
	return inTx(ctx, s, func(tx store.Tx, c *Change) (*Result, error) { return s.ActivateTx(tx, c, id, by) })
}

// Tombstones returns the tombstones deleting u leaves (see the package
// doc): one for their externalId at their IdP and one for each login
// subject, each only at an IdP SCIM manages.
func (s *Service) Tombstones(u *store.User, now time.Time) []store.Tombstone {
	var out []store.Tombstone
	add := func(idp, subject string) {
		if idp == "" || subject == "" || !s.scimManaged(idp) {
			return
		}
		t := store.Tombstone{IdP: idp, Subject: subject, UserID: u.ID, Deleted: now}
		if !slices.ContainsFunc(out, func(o store.Tombstone) bool { return o.IdP == idp && o.Subject == subject }) {
			out = append(out, t)
		}
	}
	add(u.IdP, u.ExternalID)
	for _, l := range u.Links {
		add(l.IdP, l.Subject)
	}
	return out
}

// followingTombstones returns, for a deletion by SCIM, a tombstone for
// each of u's login subjects that tombs (Tombstones' answer) leaves out:
// those at IdPs SCIM does not manage. The directory removed the person, so
// no IdP may bring them back (a second, social IdP that vouches for the
// corporate address would create them anew with it); sign-in heeds these
// at any IdP. Each names tombs[0], the tombstone at the SCIM-managed IdP,
// as its Home, and is heeded only while that one stands: a SCIM create
// there lifts them with it, so they last as long as it does. A deletion
// that leaves no tombstone at a SCIM-managed IdP leaves none of these
// either (nothing there keeps the person out, nor could lift them). An
// administrator's delete leaves none: at an IdP without SCIM, JIT creates
// the user anew after it (docs/scim.md), and disabling keeps them out.
func followingTombstones(u *store.User, tombs []store.Tombstone, now time.Time) []store.Tombstone {
	if len(tombs) == 0 {
		return nil
	}
	home := store.Link{IdP: tombs[0].IdP, Subject: tombs[0].Subject}
	var out []store.Tombstone
	for _, l := range u.Links {
		same := func(o store.Tombstone) bool { return o.IdP == l.IdP && o.Subject == l.Subject }
		if l.IdP == "" || l.Subject == "" || slices.ContainsFunc(tombs, same) || slices.ContainsFunc(out, same) {
			continue
		}
		out = append(out, store.Tombstone{IdP: l.IdP, Subject: l.Subject, UserID: u.ID, Deleted: now, Home: &home})
	}
	return out
}

// DeleteTx deletes the user, their sessions and group memberships, and
// leaves the tombstones Tombstones lists, and, deleted by SCIM, those
// followingTombstones adds.
func (s *Service) DeleteTx(tx store.Tx, c *Change, id, by string) (*Result, error) {
	u, err := userForDelete(tx, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	tombs := s.Tombstones(u, now)
	if by == BySCIM {
		tombs = append(tombs, followingTombstones(u, tombs, now)...)
	}
	for i := range tombs {
		if err := tx.PutTombstone(&tombs[i]); err != nil {
			return nil, fmt.Errorf("tombstone for user %s: %w", id, err)
		}
	}
	// Ended here rather than by DeleteUser, so that they are audited as
	// every other ending of sessions is (see the package doc).
	n, err := s.deleteUserSessions(tx, u)
	if err != nil {
		return nil, err
	}
	if err := tx.DeleteUser(id); err != nil {
		return nil, fmt.Errorf("delete user %s: %w", id, err)
	}
	ev := event(store.EventUserDeleted, u, by, now)
	ev.Detail = map[string]string{"tombstones": strconv.Itoa(len(tombs)), "sessions": strconv.Itoa(n)}
	if s.SCIMManaged == nil {
		// Offline, which IdPs SCIM manages is not known, so tombstones were
		// left at every IdP of the user (Tombstones): the same delete
		// online leaves none at an IdP SCIM does not manage. Said in the
		// trail, so that a count that differs from an online delete's is
		// explained where it is read.
		ev.Detail["scim_managed"] = "unknown"
	}
	if err := s.audit(tx, ev); err != nil {
		return nil, err
	}
	if err := s.auditRevoked(tx, u, ReasonDeleted, by, n, now); err != nil {
		return nil, err
	}
	c.ForgetUser(id)
	c.log("user deleted", zap.String("user_id", id), zap.String("idp", u.IdP), zap.String("by", by),
		zap.Int("sessions_ended", n), zap.Int("tombstones", len(tombs)))
	return &Result{User: u, Changed: true, Sessions: n, Tombstones: len(tombs)}, nil
}

// Delete is DeleteTx in a transaction of its own.
func (s *Service) Delete(ctx context.Context, id, by string) (*Result, error) {
	return inTx(ctx, s, func(tx store.Tx, c *Change) (*Result, error) { return s.DeleteTx(tx, c, id, by) })
}

// EndSessionsTx ends every session of the user, who stays as they are.
func (s *Service) EndSessionsTx(tx store.Tx, c *Change, id, by string) (*Result, error) {
	u, err := user(tx, id)
	if err != nil {
		return nil, err
	}
	n, err := s.endUserSessions(tx, u, ReasonRevoked, by)
	if err != nil {
		return nil, err
	}
	c.ForgetUser(id)
	c.log("sessions ended", zap.String("user_id", id), zap.String("reason", ReasonRevoked), zap.String("by", by), zap.Int("sessions_ended", n))
	return &Result{User: u, Changed: n > 0, Sessions: n}, nil
}

// EndSessions is EndSessionsTx in a transaction of its own.
func (s *Service) EndSessions(ctx context.Context, id, by string) (*Result, error) {
	return inTx(ctx, s, func(tx store.Tx, c *Change) (*Result, error) { return s.EndSessionsTx(tx, c, id, by) })
}

// AuditBackup records, before a backup is handed out, that it is: one
// store.backed_up event with who asked (by, the event's Reason) and how
// (via, ViaAdminAPI or ViaOffline), and, when known, from where (remote, the
// client's address), never what the backup holds. It runs before the
// backup so that one cut short or never finished is recorded as well. An
// error is the caller's to report: the admin API and the offline backup
// still hand the backup out (a store in trouble is when one is needed) and
// log an ERROR or print a warning.
func (s *Service) AuditBackup(ctx context.Context, by, via, remote string) error {
	ev := store.Event{Time: s.now(), Type: EventStoreBackedUp, Reason: by, Detail: map[string]string{"via": via}}
	if remote != "" {
		ev.Detail["remote"] = remote
	}
	err := s.Store.Update(ctx, func(tx store.Tx) error { return tx.Audit(ev) })
	if err != nil {
		return fmt.Errorf("audit the backup: %w", err)
	}
	if s.Logger != nil {
		s.Logger.Info("store backup handed out", zap.String("by", by), zap.String("via", via), zap.String("remote", remote))
	}
	return nil
}

// inTx runs op, an operation's Tx form, in a transaction of its own
// (Service.Update) and returns its result, or nil with the error.
func inTx[R any](ctx context.Context, s *Service, op func(tx store.Tx, c *Change) (*R, error)) (*R, error) {
	var res *R
	err := s.Update(ctx, func(tx store.Tx, c *Change) error {
		var err error
		res, err = op(tx, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}
