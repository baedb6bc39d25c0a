package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
)

// tx adapts one PostgreSQL transaction to store.Tx. It lives for one run
// of the caller's fn, so nothing in it outlives a rerun.
type tx struct {
	db       *DB
	ctx      context.Context
	q        pgx.Tx
	writable bool
	// failed is the first statement that failed. PostgreSQL aborts the
	// transaction there, so every later call fails with it, and Update
	// or View either reruns fn (a conflict, a lost connection: see run) or
	// reports it.
	failed error
	// audit holds the events Audit queued, inserted by flushAudit just
	// before the commit.
	audit []store.Event
	// heldKeys is, for each user whose row this transaction has locked
	// (userLocked, PutUser), the key locks of the keys the row holds: the
	// row lock covers them (see PutUser).
	heldKeys map[string][]int64
	// notified: BroadcastAtCommit queued a notice, which the server
	// checks for room in its NOTIFY queue only at COMMIT (see runs).
	notified bool
	// quiet turns BroadcastAtCommit off: the rerun of a transaction whose
	// COMMIT found the NOTIFY queue full (see runs).
	quiet bool
	// usersSeen are the users UsersOfIdP found in this Update (less those
	// it deleted itself), which it does not lock: a member among them that
	// PutGroup finds gone was deleted by another transaction since, and
	// this one is rerun (errMemberDeletedMeanwhile).
	usersSeen []string
}

var _ store.Tx = (*tx)(nil)

// mustWrite guards every write: the contract asks for ErrReadOnly, which
// is clearer than PostgreSQL's refusal in a read-only transaction.
func (t *tx) mustWrite(op string) error {
	if !t.writable {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrReadOnly)
	}
	return nil
}

// ---- statements ----

// lockFor returns the row-lock clause for a read of one record in a
// read-write transaction: the caller may write back what it read, and the
// lock makes any other transaction that means to do the same wait for
// this one's commit, so neither overwrites the other (see the package
// doc). Reads in a View lock nothing.
//
// The lock is FOR NO KEY UPDATE, which is all a write that keeps the
// row's key needs, and which does not conflict with the FOR KEY SHARE
// lock a foreign key takes on the row it points to. FOR UPDATE would: a
// sign-in would then wait for every transaction that merely inserted a
// row pointing to the user, such as a SCIM group change adding them as a
// member, for as long as that whole transaction runs (docs/cluster.md).
func (t *tx) lockFor(table string) string {
	if !t.writable {
		return ""
	}
	return " FOR NO KEY UPDATE OF " + table
}

// fail records the first statement failure (see tx.failed) and returns err
// scrubbed of secrets (see explain).
func (t *tx) fail(err error) error {
	if err == nil || errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if t.failed == nil {
		t.failed = err
	}
	return t.explain(err)
}

func (t *tx) exec(sql string, args ...any) (int64, error) {
	if t.failed != nil {
		return 0, t.failed
	}
	ctx, cancel := t.db.bound(t.ctx)
	defer cancel()
	tag, err := t.q.Exec(ctx, sql, args...)
	if err != nil {
		return 0, t.fail(err)
	}
	return tag.RowsAffected(), nil
}

// row scans the first row of a query; pgx.ErrNoRows when there is none.
func (t *tx) row(sql string, args []any, dest ...any) error {
	if t.failed != nil {
		return t.failed
	}
	ctx, cancel := t.db.bound(t.ctx)
	defer cancel()
	return t.fail(t.q.QueryRow(ctx, sql, args...).Scan(dest...))
}

// rows runs a query and calls scan for each row, with the row's values
// already read (so scan may not run statements; collect and act after).
// The time bound counts only the waits for the server (see boundWaits),
// not the time scan takes.
func (t *tx) rows(sql string, args []any, scan func(pgx.Rows) error) error {
	if t.failed != nil {
		return t.failed
	}
	ctx, pause, resume, release := t.db.boundWaits(t.ctx)
	defer release()
	rs, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		return t.fail(err)
	}
	defer rs.Close() // reads what is left of the answer: the clock runs
	for rs.Next() {
		pause()
		err := scan(rs)
		resume()
		if err != nil {
			return err
		}
	}
	return t.fail(rs.Err())
}

// lockedRow is row after taking the transaction-scoped advisory locks keys
// (0s skipped) in a read-write transaction, in the same round trip. The
// lock comes first, in a statement of its own, so that the read's snapshot
// is taken after any transaction that held the lock has committed.
func (t *tx) lockedRow(key int64, sql string, args []any, dest ...any) error {
	if !t.writable || key == 0 {
		return t.row(sql, args, dest...)
	}
	if t.failed != nil {
		return t.failed
	}
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1)", key)
	var scanErr error
	b.Queue(sql, args...).QueryRow(func(r pgx.Row) error {
		scanErr = r.Scan(dest...)
		if errors.Is(scanErr, pgx.ErrNoRows) {
			return nil // not a failure of the batch
		}
		return scanErr
	})
	if err := t.batch(b); err != nil {
		return err
	}
	return scanErr
}

// lockKeys takes the advisory locks keys, in order, in a read-write
// transaction; it does nothing in a View.
func (t *tx) lockKeys(keys []int64) error {
	keys = slices.DeleteFunc(slices.Clone(keys), func(k int64) bool { return k == 0 })
	if !t.writable || len(keys) == 0 {
		return nil
	}
	// One order for every transaction keeps two that lock the same keys
	// from deadlocking.
	slices.Sort(keys)
	keys = slices.Compact(keys)
	_, err := t.exec("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS l(k, i) ORDER BY i", keys)
	return err
}

// batch sends several statements in one round trip and runs them in order.
func (t *tx) batch(b *pgx.Batch) error {
	if t.failed != nil {
		return t.failed
	}
	ctx, cancel := t.db.bound(t.ctx)
	defer cancel()
	return t.fail(t.q.SendBatch(ctx, b).Close())
}

// ---- values ----

// nanos encodes a time for the *_ns columns: exact unix nanoseconds, with
// the zero time as the smallest value so that it sorts (and expires) first,
// as time.Time{}.Before does. Times outside 1678..2262, which UnixNano
// cannot hold, are clamped.
func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return math.MinInt64
	case t.Before(minNanos):
		return math.MinInt64 + 1
	case t.After(maxNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanos = time.Unix(0, math.MinInt64+1)
	maxNanos = time.Unix(0, math.MaxInt64)
)

// fromNanos decodes nanos, in UTC.
func fromNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// storable reports whether PostgreSQL's text type can hold s: UTF-8
// without NUL bytes. A lookup by a value it cannot hold finds nothing; a
// write of one gets ErrInvalidValue.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// checkKey checks a key that is not a person's attribute (a session's
// hash and logout subject, a single-use ID, a tombstone's subject): at
// most MaxKeyBytes (store.CheckKey, as bolt checks it), and storable in a
// text column. A user's attributes are checked with store.CheckIndexed.
func checkKey(what, v string) error {
	if err := store.CheckKey(what, v); err != nil {
		return err
	}
	if !storable(v) {
		return fmt.Errorf("%s is not UTF-8 text without NUL bytes: %w", what, store.ErrInvalidValue)
	}
	return nil
}

// nullIfEmpty maps "" to SQL NULL, which unique indexes never compare equal.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// newID returns a random 128-bit ID in lowercase hex, as the bolt backend
// makes them.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("postgres: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// pageSize is how many records a ForEach reads per query: each page is read
// whole before fn runs, so that fn may use the transaction.
const pageSize = 500

// forEachPage calls fn for every record of a keyset-paged query: read
// returns the page after last (nil for the first page), and a page shorter
// than pageSize is the last.
func forEachPage[T any](read func(last *T) ([]*T, error), fn func(*T) error) error {
	var last *T
	for {
		page, err := read(last)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		last = page[len(page)-1]
	}
}

// collect runs a query and returns what scan makes of each row.
func collect[T any](t *tx, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	var out []T
	err := t.rows(sql, args, func(r pgx.Rows) error {
		v, err := scan(r)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// scanJSON scans a row of one JSON column and decodes it with decode.
func scanJSON[T any](decode func([]byte) (T, error)) func(pgx.Row) (T, error) {
	return func(r pgx.Row) (T, error) {
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			var zero T
			return zero, err
		}
		return decode(raw)
	}
}

// decodeJSON decodes one record of type T; what names it in errors.
func decodeJSON[T any](what string) func([]byte) (*T, error) {
	return func(raw []byte) (*T, error) {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", what, err)
		}
		return v, nil
	}
}

// ---- users ----

var decodeUser = decodeJSON[store.User]("user")

// userLocked reads the one user a condition selects, after locking key
// (see keyLock) in a read-write transaction, with the row-lock clause
// lock, which must be empty in a View. A row lock (FOR NO KEY UPDATE or
// FOR UPDATE) covers the keys the row holds (heldKeys): no one else can
// take them, or move them off the row, before this commits. An empty lock
// in an Update (UserHolding) covers none.
func (t *tx) userLocked(what string, key int64, lock, cond string, args ...any) (*store.User, error) {
	var raw []byte
	err := t.lockedRow(key, "SELECT u.data FROM sso_users u "+cond+lock, args, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	u, err := decodeUser(raw)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	if lock != "" {
		t.holdKeys(u.ID, u.IdP, u.Email, u.UserName, u.ExternalID, u.Links)
	}
	return u, nil
}

// userKeys returns the key locks (see keyLock) of a user's keys.
func (t *tx) userKeys(idp, email, userName, externalID string, links []store.Link) []int64 {
	keys := []int64{t.db.keyLock("user name", store.FoldName(userName)), t.db.keyLock("email", store.FoldName(email)),
		t.db.keyLock("user external id", idp, externalID)}
	for _, l := range links {
		keys = append(keys, t.db.keyLock("link", l.IdP, l.Subject))
	}
	return keys
}

// holdKeys records the keys of a user whose row this transaction holds
// locked, as stored (see heldKeys).
func (t *tx) holdKeys(id, idp, email, userName, externalID string, links []store.Link) {
	if t.heldKeys == nil {
		t.heldKeys = make(map[string][]int64)
	}
	t.heldKeys[id] = t.userKeys(idp, email, userName, externalID, links)
}

func notFound(what string) error { return fmt.Errorf("postgres: %s: %w", what, store.ErrNotFound) }

func (t *tx) User(id string) (*store.User, error) { return t.userByID(id, t.lockFor("u")) }

// userByID reads the user id, locking its row with lock (see userLocked).
func (t *tx) userByID(id, lock string) (*store.User, error) {
	what := "user " + id
	if !storable(id) {
		return nil, notFound(what)
	}
	return t.userLocked(what, 0, lock, "WHERE u.id = $1", id)
}

// UserForDelete is User, locking the row FOR UPDATE, the lock DeleteUser's
// DELETE takes, rather than FOR NO KEY UPDATE (lockFor). A transaction that
// read the user with the weaker lock would have to upgrade it at the
// delete, and the upgrade waits for the FOR KEY SHARE lock of any
// transaction that has pointed a row at the user meanwhile (a SCIM group
// change inserting them as a member, which NO KEY UPDATE lets through):
// were that one then to wait for the first lock, neither could go on, and
// PostgreSQL would break the deadlock after deadlock_timeout by failing
// one (the lock order, see syncMembers, keeps such a wait out). FOR UPDATE
// from the start instead waits for such a transaction to commit, and keeps
// any new one from pointing at the user until the delete commits.
//
// The user's groups are locked first (lockUserGroups), but those are the
// groups of before the wait: a group the user joined in the transaction
// the lock on the user waited for is not among them, and DeleteUser would
// lock it after the user (leaveAllGroups), out of order, deadlocking with
// a change to that group that holds it and waits for the user. So the
// groups are read again once the user is locked, and when one is new both
// locks are given back (to a savepoint: PostgreSQL releases the row locks
// taken after it) and taken again in order, now with that group.
func (t *tx) UserForDelete(id string) (*store.User, error) {
	if !t.writable || !storable(id) {
		return t.userByID(id, "")
	}
	for try := 1; ; try++ {
		u, again, err := t.userForDelete(id)
		switch {
		case err != nil:
			return nil, err
		case !again:
			return u, nil
		case try == maxAttempts:
			// Joins faster than the locks can be taken again: the
			// transaction is rerun, as after a deadlock (retryable).
			return nil, t.fail(fmt.Errorf("postgres: user %s: %w", id, errJoinedMeanwhile))
		}
	}
}

// userForDelete is one try of UserForDelete: again when the user joined a
// group while the lock on the user waited, and the locks were given back.
func (t *tx) userForDelete(id string) (u *store.User, again bool, err error) {
	wrap := func(err error) (*store.User, bool, error) {
		return nil, false, fmt.Errorf("postgres: user %s: %w", id, err)
	}
	if _, err := t.exec("SAVEPOINT sso_user_for_delete"); err != nil {
		return wrap(err)
	}
	locked, err := t.lockUserGroups(id)
	if err != nil {
		return wrap(err)
	}
	u, err = t.userByID(id, " FOR UPDATE OF u")
	switch {
	case err == nil:
		if again, err = t.joinedOther(id, locked); err != nil {
			return wrap(err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, err
	}
	end := "RELEASE SAVEPOINT sso_user_for_delete"
	if again {
		end = "ROLLBACK TO SAVEPOINT sso_user_for_delete"
		delete(t.heldKeys, id) // the row's lock goes with the savepoint
	}
	if _, xerr := t.exec(end); xerr != nil {
		return wrap(xerr)
	}
	return u, again, err
}

func (t *tx) UserByLink(idp, subject string) (*store.User, error) {
	return t.userByKey(store.KeyLink, idp, subject, t.lockFor("u"))
}

func (t *tx) UserByEmail(email string) (*store.User, error) {
	return t.userByKey(store.KeyEmail, "", email, t.lockFor("u"))
}

func (t *tx) UserByUserName(userName string) (*store.User, error) {
	return t.userByKey(store.KeyUserName, "", userName, t.lockFor("u"))
}

func (t *tx) UserByExternalID(idp, externalID string) (*store.User, error) {
	return t.userByKey(store.KeyExternalID, idp, externalID, t.lockFor("u"))
}

// UserHolding is the read of UserByLink, UserByEmail, UserByUserName or
// UserByExternalID with the key lock and without the row lock (see
// store.Tx.UserHolding): the key lock makes the read see a concurrent
// transaction that takes the value committed, and the row is left to
// LockUsers, or to no one when the transaction only checks the holder.
func (t *tx) UserHolding(key store.UserKey, idp, value string) (*store.User, error) {
	return t.userByKey(key, idp, value, "")
}

// userByKey reads the user holding value as key (idp for KeyLink and
// KeyExternalID), after the value's key lock (see keyLock), locking the
// row with lock (see userLocked).
func (t *tx) userByKey(key store.UserKey, idp, value, lock string) (*store.User, error) {
	switch key {
	case store.KeyLink:
		what := "user by link " + idp
		if !storable(idp) || !storable(value) {
			return nil, notFound(what)
		}
		return t.userLocked(what, t.db.keyLock("link", idp, value), lock, "JOIN sso_links l ON l.user_id = u.id WHERE l.idp = $1 AND l.subject = $2", idp, value)
	case store.KeyEmail:
		folded := store.FoldName(value)
		if folded == "" || !storable(folded) {
			return nil, notFound("user by email")
		}
		return t.userLocked("user by email", t.db.keyLock("email", folded), lock, "WHERE u.email_key = $1", folded)
	case store.KeyUserName:
		folded := store.FoldName(value)
		if folded == "" || !storable(folded) {
			return nil, notFound("user by user name")
		}
		return t.userLocked("user by user name", t.db.keyLock("user name", folded), lock, "WHERE u.user_name_key = $1", folded)
	case store.KeyExternalID:
		what := "user by external id in " + idp
		if value == "" || !storable(idp) || !storable(value) {
			return nil, notFound(what)
		}
		return t.userLocked(what, t.db.keyLock("user external id", idp, value), lock, "WHERE u.idp = $1 AND u.external_id = $2", idp, value)
	}
	return nil, fmt.Errorf("postgres: user holding: unknown key %d", key)
}

// LockUsers locks the users' rows FOR NO KEY UPDATE, as User does, in ID
// order in one statement (the lock order, see syncMembers), and records
// the keys each row holds as held (heldKeys), as User does.
func (t *tx) LockUsers(ids []string) error {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !storable(id) })
	if !t.writable || len(ids) == 0 {
		return nil
	}
	locked, err := collect(t, scanJSON(decodeUser), "SELECT data FROM sso_users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", ids)
	if err != nil {
		return fmt.Errorf("postgres: lock users: %w", err)
	}
	for _, u := range locked {
		t.holdKeys(u.ID, u.IdP, u.Email, u.UserName, u.ExternalID, u.Links)
	}
	return nil
}

func (t *tx) ListUsers(idp string, startIndex, count int) ([]*store.User, int, error) {
	if !storable(idp) {
		return nil, 0, nil
	}
	var total int
	if err := t.row("SELECT count(*) FROM sso_users WHERE idp = $1", []any{idp}, &total); err != nil {
		return nil, 0, fmt.Errorf("postgres: list users of %s: %w", idp, err)
	}
	if count <= 0 {
		return nil, total, nil
	}
	out, err := collect(t, scanJSON(decodeUser), "SELECT data FROM sso_users WHERE idp = $1 ORDER BY id OFFSET $2 LIMIT $3",
		idp, max(startIndex, 1)-1, count)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: list users of %s: %w", idp, err)
	}
	return out, total, nil
}

// UsersOfIdP takes no row lock, unlike User in an Update (see
// store.Tx.UsersOfIdP): PutGroup locks the members a group change
// touches, in ID order (syncMembers), and a lock taken here first would be
// out of that order. So a user found here may be deleted before PutGroup:
// before its member check, which then reruns the transaction
// (errMemberDeletedMeanwhile, from the users kept in usersSeen), or after,
// when its member insert fails on the foreign key (23503), which reruns it
// too. The rerun's read finds the user gone.
func (t *tx) UsersOfIdP(idp string, ids []string) ([]string, error) {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !storable(id) })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if !storable(idp) || len(ids) == 0 {
		return nil, nil
	}
	var out []string
	for chunk := range slices.Chunk(ids, memberChunk) {
		err := t.rows("SELECT id FROM sso_users WHERE idp = $1 AND id = ANY($2) ORDER BY id", []any{idp, chunk}, func(r pgx.Rows) error {
			var id string
			if err := r.Scan(&id); err != nil {
				return err
			}
			out = append(out, id)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("postgres: users of %s: %w", idp, err)
		}
	}
	if t.writable {
		t.usersSeen = append(t.usersSeen, out...)
	}
	return out, nil
}

// PutUser creates or replaces u. An empty u.ID gets a fresh random ID, and
// zero Created/Updated get the current time; all three are set on u. Every
// key is checked against the other users before anything is written (see
// the package doc for the race with another instance).
func (t *tx) PutUser(u *store.User) error {
	if err := t.mustWrite("put user"); err != nil {
		return err
	}
	if u == nil {
		return errors.New("postgres: put user: nil user")
	}
	id := u.ID
	fail := func(err error) error { return fmt.Errorf("postgres: put user %s: %w", id, err) }
	links, err := store.NormalLinks(u.Links)
	if err != nil {
		return fail(err)
	}
	// store.CheckIndexed bounds the folded forms the email and user name
	// indexes hold as well, and keeps out what text cannot hold.
	checks := []struct{ what, v string }{
		{"id", id}, {"idp", u.IdP}, {"email", u.Email}, {"user name", u.UserName}, {"external id", u.ExternalID},
		{"display name", u.DisplayName},
	}
	for _, l := range links {
		checks = append(checks, struct{ what, v string }{"link subject", l.Subject}, struct{ what, v string }{"link idp", l.IdP})
	}
	for _, c := range checks {
		if err := store.CheckIndexed(c.what, c.v); err != nil {
			return fail(err)
		}
	}
	emailKey, nameKey := store.FoldName(u.Email), store.FoldName(u.UserName)
	if id == "" {
		if id, err = newID(); err != nil {
			return err
		}
	}
	linkIdPs := make([]string, len(links))
	linkSubs := make([]string, len(links))
	for i, l := range links {
		linkIdPs[i], linkSubs[i] = l.IdP, l.Subject
	}

	// Lock every key this user will hold, so that the check below sees
	// any transaction that took one of them committed (see keyLock). A key
	// the user's row already holds, read and locked in this transaction,
	// needs no lock: no one else can take it, or move it off the row,
	// before this commits. Locking it anyway would deadlock with a
	// sign-in, which locks the key (its link) before the row, when this
	// holds the row first (a SCIM deactivation reads the user, then writes
	// it back).
	held := t.heldKeys[id]
	keys := slices.DeleteFunc(t.userKeys(u.IdP, u.Email, u.UserName, u.ExternalID, links), func(k int64) bool {
		return slices.Contains(held, k)
	})
	if err := t.lockKeys(keys); err != nil {
		return fail(err)
	}
	// One round trip finds every owner of a key this user would take, in
	// the order bolt reports conflicts.
	var linkOwner, emailOwner, nameOwner, extOwner *string
	err = t.row(`SELECT
		(SELECT l.user_id FROM sso_links l JOIN unnest($2::text[], $3::text[]) AS n(idp, subject)
			ON l.idp = n.idp AND l.subject = n.subject WHERE l.user_id <> $1 LIMIT 1),
		(SELECT id FROM sso_users WHERE email_key = $4 AND id <> $1),
		(SELECT id FROM sso_users WHERE user_name_key = $5 AND id <> $1),
		(SELECT id FROM sso_users WHERE idp = $6 AND external_id = $7 AND id <> $1)`,
		[]any{id, linkIdPs, linkSubs, nullIfEmpty(emailKey), nullIfEmpty(nameKey), u.IdP, nullIfEmpty(u.ExternalID)},
		&linkOwner, &emailOwner, &nameOwner, &extOwner)
	if err != nil {
		return fail(err)
	}
	switch {
	case linkOwner != nil:
		return fail(fmt.Errorf("link: %w", store.ErrLinkTaken))
	case emailOwner != nil:
		return fail(store.ErrEmailTaken)
	case nameOwner != nil:
		return fail(store.ErrUserNameTaken)
	case extOwner != nil:
		return fail(fmt.Errorf("external id in %s: %w", u.IdP, store.ErrExternalIDTaken))
	}

	rec := *u
	rec.ID = id
	rec.Links = links
	store.FillTimes(&rec.Created, &rec.Updated, time.Now())
	data, err := json.Marshal(&rec)
	if err != nil {
		return fail(fmt.Errorf("encode: %w", err))
	}
	b := &pgx.Batch{}
	// An UPDATE, and an INSERT only if it found no row, rather than
	// INSERT … ON CONFLICT DO UPDATE: that one locks the row FOR UPDATE
	// because its SET names the unique columns, even when their values
	// stay, and so waits for every transaction holding a foreign key's
	// lock on the user (a SCIM group change adding them, see lockFor). A
	// plain UPDATE takes that stronger lock only when a key's value
	// changes; that upgrade of the row's lock (User took FOR NO KEY
	// UPDATE) waits for such holders to commit, and cannot deadlock with
	// them only because each locked the user before pointing a row at them
	// (the lock order, see syncMembers).
	b.Queue(`WITH up AS (UPDATE sso_users SET idp = $2, email_key = $3, user_name_key = $4, external_id = $5, data = $6
			WHERE id = $1 RETURNING 1)
		INSERT INTO sso_users (id, idp, email_key, user_name_key, external_id, data)
			SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM up)`,
		id, rec.IdP, nullIfEmpty(emailKey), nullIfEmpty(nameKey), nullIfEmpty(rec.ExternalID), string(data))
	b.Queue(`DELETE FROM sso_links l WHERE l.user_id = $1 AND NOT EXISTS
		(SELECT 1 FROM unnest($2::text[], $3::text[]) AS n(idp, subject) WHERE n.idp = l.idp AND n.subject = l.subject)`,
		id, linkIdPs, linkSubs)
	// A plain INSERT of the links the user does not hold yet: one another
	// transaction took since the check above fails with a unique
	// violation, and the rerun reports ErrLinkTaken.
	b.Queue(`INSERT INTO sso_links (idp, subject, user_id) SELECT n.idp, n.subject, $1 FROM unnest($2::text[], $3::text[]) AS n(idp, subject)
		WHERE NOT EXISTS (SELECT 1 FROM sso_links l WHERE l.idp = n.idp AND l.subject = n.subject AND l.user_id = $1)`, id, linkIdPs, linkSubs)
	if err := t.batch(b); err != nil {
		return fail(err)
	}
	t.holdKeys(id, rec.IdP, rec.Email, rec.UserName, rec.ExternalID, links)
	u.ID, u.Created, u.Updated = rec.ID, rec.Created, rec.Updated
	return nil
}

// DeleteUser removes the user; the foreign keys take its links, sessions
// (and their tokens) and group memberships with it. Audit events stay.
// The groups the user leaves are stamped first (leaveAllGroups).
func (t *tx) DeleteUser(id string) error {
	if err := t.mustWrite("delete user " + id); err != nil {
		return err
	}
	if storable(id) {
		if err := t.leaveAllGroups(id); err != nil {
			return fmt.Errorf("postgres: delete user %s: %w", id, err)
		}
	}
	delete(t.heldKeys, id)
	// Gone by this transaction's own hand: a PutGroup naming them after
	// this is the caller's mistake (ErrNotFound), not a conflict.
	t.usersSeen = slices.DeleteFunc(t.usersSeen, func(seen string) bool { return seen == id })
	return t.deleteRow("delete user", " "+id, "DELETE FROM sso_users WHERE id = $1", id)
}

// deleteRow runs one delete by key (op names it in errors, with what
// after it): a write, ErrNotFound when no row had the key.
func (t *tx) deleteRow(op, what, sql, key string) error {
	if err := t.mustWrite(op + what); err != nil {
		return err
	}
	if !storable(key) {
		return notFound(op + what)
	}
	n, err := t.exec(sql, key)
	if err != nil {
		return fmt.Errorf("postgres: %s%s: %w", op, what, err)
	}
	if n == 0 {
		return notFound(op + what)
	}
	return nil
}

// storableAfter turns a keyset cursor into one PostgreSQL can hold, for a
// key column of storable values in byte order (COLLATE "C"): it answers
// what bbolt's byte comparison answers, where passing the cursor as it is
// fails the query (an admin API ?after=%ff was a 500). The cursor is cut
// at its first byte text cannot hold: a NUL sorts below every byte a key
// can have there, so the keys after the cursor are those after the part
// before it (skipPrefix false); a byte that starts no valid UTF-8 sorts
// above the ASCII ones, so the keys after it are, exact for keys ASCII
// there (the IDs and hashes stores make are hex), those after the part
// before it that do not start with it (skipPrefix true).
func storableAfter(after string) (cursor string, skipPrefix bool) {
	if storable(after) {
		return after, false
	}
	for i, r := range after {
		switch {
		case r == 0:
			return after[:i], false
		case r == utf8.RuneError && !strings.HasPrefix(after[i:], "\uFFFD"):
			return after[:i], true
		}
	}
	return after, false // not reached: an unstorable string has one of the two
}

func (t *tx) ForEachUser(after string, fn func(*store.User) error) error {
	after, skip := storableAfter(after)
	return forEachPage(func(last *store.User) ([]*store.User, error) {
		cond := "id > $1"
		if last != nil {
			after, skip = last.ID, false
		}
		if skip {
			cond += " AND NOT starts_with(id, $1)"
		}
		page, err := collect(t, scanJSON(decodeUser), "SELECT data FROM sso_users WHERE "+cond+" ORDER BY id LIMIT $2", after, pageSize)
		if err != nil {
			return nil, fmt.Errorf("postgres: for each user: %w", err)
		}
		return page, nil
	}, fn)
}

// ---- sessions ----

const sessionColumns = "hash, user_id, idp, created_ns, expires_ns, last_seen_ns, subject, subject_format, session_id, auth_time_ns"

func scanSession(r pgx.Row) (*store.Session, error) {
	s := new(store.Session)
	var created, expires, seen int64
	var authTime *int64 // NULL: the IdP did not say, or stored before schema 3
	var format string
	if err := r.Scan(&s.Hash, &s.UserID, &s.IdP, &created, &expires, &seen,
		&s.Logout.Subject, &format, &s.Logout.SessionID, &authTime); err != nil {
		return nil, err
	}
	s.Created, s.Expires, s.LastSeen = fromNanos(created), fromNanos(expires), fromNanos(seen)
	if authTime != nil {
		s.AuthTime = fromNanos(*authTime)
	}
	// The SAML NameID's qualifiers share subject_format
	// (store.LogoutInfo.StoredSubjectFormat): no migration.
	s.Logout.SetStoredSubjectFormat(format)
	return s, nil
}

// authTimeNanos is a session's auth_time_ns: NULL when the IdP did not say.
func authTimeNanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := nanos(t)
	return &n
}

// sessionsWhere reads the sessions a condition selects, in hash order,
// then applies limit ("" or "LIMIT $n").
func (t *tx) sessionsWhere(cond, limit string, args ...any) ([]*store.Session, error) {
	return collect(t, scanSession, "SELECT "+sessionColumns+" FROM sso_sessions "+cond+" ORDER BY hash "+limit, args...)
}

func (t *tx) Session(hash string) (*store.Session, error) {
	if !storable(hash) {
		return nil, notFound("session")
	}
	if t.failed != nil {
		return nil, t.failed
	}
	ctx, cancel := t.db.bound(t.ctx)
	defer cancel()
	s, err := scanSession(t.q.QueryRow(ctx, "SELECT "+sessionColumns+" FROM sso_sessions WHERE hash = $1"+t.lockFor("sso_sessions"), hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("session")
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: session: %w", t.fail(err))
	}
	return s, nil
}

// PutSession writes the session only if its user exists, in one
// statement: the foreign key then holds the user row until commit, so a
// concurrent deletion either waits or makes this transaction rerun.
func (t *tx) PutSession(s *store.Session) error {
	if err := t.mustWrite("put session"); err != nil {
		return err
	}
	if s == nil || s.Hash == "" || s.UserID == "" {
		return errors.New("postgres: put session: hash and user id are required")
	}
	format := s.Logout.StoredSubjectFormat()
	for _, c := range []struct{ what, v string }{
		{"session hash", s.Hash}, {"user id", s.UserID}, {"idp", s.IdP},
		{"logout subject", s.Logout.Subject}, {"logout subject format", format}, {"logout session id", s.Logout.SessionID},
	} {
		if err := checkKey(c.what, c.v); err != nil {
			return fmt.Errorf("postgres: put session: %w", err)
		}
	}
	var ok bool
	err := t.row(`INSERT INTO sso_sessions (`+sessionColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM sso_users WHERE id = $2)
		ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id, idp = EXCLUDED.idp,
			created_ns = EXCLUDED.created_ns, expires_ns = EXCLUDED.expires_ns, last_seen_ns = EXCLUDED.last_seen_ns,
			subject = EXCLUDED.subject, subject_format = EXCLUDED.subject_format, session_id = EXCLUDED.session_id,
			auth_time_ns = EXCLUDED.auth_time_ns
		RETURNING true`,
		[]any{s.Hash, s.UserID, s.IdP, nanos(s.Created), nanos(s.Expires), nanos(s.LastSeen),
			s.Logout.Subject, format, s.Logout.SessionID, authTimeNanos(s.AuthTime)}, &ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: put session: user %s: %w", s.UserID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: put session: %w", err)
	}
	return nil
}

func (t *tx) DeleteSession(hash string) error {
	return t.deleteRow("delete session", "", "DELETE FROM sso_sessions WHERE hash = $1", hash)
}

func (t *tx) SessionTokens(hash string) ([]byte, error) {
	if !storable(hash) {
		return nil, notFound("session tokens")
	}
	var sealed []byte
	query := "SELECT k.sealed FROM sso_sessions s LEFT JOIN sso_session_tokens k ON k.hash = s.hash WHERE s.hash = $1"
	if t.writable {
		// A refresh swaps the tokens only if they are still those it
		// read (session/upstream.go), so the read locks them like any
		// record read to be written back: the session's row first, and
		// the tokens in a statement of their own, whose snapshot, taken
		// after the lock, holds the last committed swap (a join would
		// re-read only the locked row after the wait, not the tokens).
		var one int
		err := t.row("SELECT 1 FROM sso_sessions WHERE hash = $1"+t.lockFor("sso_sessions"), []any{hash}, &one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, notFound("session tokens")
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: session tokens: %w", err)
		}
		query = "SELECT sealed FROM sso_session_tokens WHERE hash = $1"
	}
	err := t.row(query, []any{hash}, &sealed)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && t.writable:
		return nil, nil // the session has no tokens
	case errors.Is(err, pgx.ErrNoRows):
		return nil, notFound("session tokens")
	case err != nil:
		return nil, fmt.Errorf("postgres: session tokens: %w", err)
	}
	if len(sealed) == 0 {
		return nil, nil
	}
	return sealed, nil
}

func (t *tx) PutSessionTokens(hash string, sealed []byte) error {
	if err := t.mustWrite("put session tokens"); err != nil {
		return err
	}
	if !storable(hash) {
		return notFound("put session tokens")
	}
	var exists bool
	var err error
	if len(sealed) == 0 {
		err = t.row(`WITH gone AS (DELETE FROM sso_session_tokens WHERE hash = $1)
			SELECT EXISTS (SELECT 1 FROM sso_sessions WHERE hash = $1)`, []any{hash}, &exists)
	} else {
		err = t.row(`INSERT INTO sso_session_tokens (hash, sealed)
			SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM sso_sessions WHERE hash = $1)
			ON CONFLICT (hash) DO UPDATE SET sealed = EXCLUDED.sealed RETURNING true`, []any{hash, sealed}, &exists)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: put session tokens: %w", err)
	}
	if !exists {
		return notFound("put session tokens")
	}
	return nil
}

func (t *tx) UserSessions(userID string) ([]*store.Session, error) {
	if !storable(userID) {
		return nil, nil
	}
	out, err := t.sessionsWhere("WHERE user_id = $1", "", userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: sessions of user %s: %w", userID, err)
	}
	return out, nil
}

func (t *tx) DeleteUserSessions(userID string) ([]string, error) {
	if err := t.mustWrite("delete user sessions"); err != nil {
		return nil, err
	}
	if !storable(userID) {
		return nil, nil
	}
	// The rows are locked in hash order first, as TouchSessions locks
	// them: a sign-out of every session of a user during a flush of their
	// last-seen times then waits for it instead of deadlocking.
	hashes, err := t.deleteReturning(`WITH victims AS (SELECT hash FROM sso_sessions WHERE user_id = $1 ORDER BY hash FOR UPDATE)
		DELETE FROM sso_sessions s USING victims WHERE s.hash = victims.hash RETURNING s.hash`, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: delete sessions of user %s: %w", userID, err)
	}
	return hashes, nil
}

// LockSessions locks the rows in hash order, FOR UPDATE as the deletes
// that follow need (see store.Tx.LockSessions).
func (t *tx) LockSessions(userID string, hashes []string) error {
	if !t.writable {
		return nil
	}
	hashes = slices.DeleteFunc(slices.Clone(hashes), func(h string) bool { return !storable(h) })
	if !storable(userID) {
		userID = ""
	}
	if userID == "" && len(hashes) == 0 {
		return nil
	}
	// Not nil, which pgx sends as NULL.
	hashes = append([]string{}, hashes...)
	if _, err := t.exec("SELECT 1 FROM sso_sessions WHERE user_id = $1 OR hash = ANY($2::text[]) ORDER BY hash FOR UPDATE", userID, hashes); err != nil {
		return fmt.Errorf("postgres: lock sessions: %w", err)
	}
	return nil
}

// deleteReturning runs a DELETE ... RETURNING hash and returns the hashes
// in order.
func (t *tx) deleteReturning(sql string, args ...any) ([]string, error) {
	var hashes []string
	err := t.rows(sql, args, func(r pgx.Rows) error {
		var h string
		if err := r.Scan(&h); err != nil {
			return err
		}
		hashes = append(hashes, h)
		return nil
	})
	slices.Sort(hashes)
	return hashes, err
}

func (t *tx) SessionsBySubject(idp, subject string) ([]*store.Session, error) {
	if subject == "" || !storable(idp) || !storable(subject) {
		return nil, nil
	}
	out, err := t.sessionsWhere("WHERE idp = $1 AND subject = $2 AND subject <> ''", "", idp, subject)
	if err != nil {
		return nil, fmt.Errorf("postgres: sessions by subject in %s: %w", idp, err)
	}
	return out, nil
}

func (t *tx) SessionsBySessionID(idp, sessionID string) ([]*store.Session, error) {
	if sessionID == "" || !storable(idp) || !storable(sessionID) {
		return nil, nil
	}
	out, err := t.sessionsWhere("WHERE idp = $1 AND session_id = $2 AND session_id <> ''", "", idp, sessionID)
	if err != nil {
		return nil, fmt.Errorf("postgres: sessions by session id in %s: %w", idp, err)
	}
	return out, nil
}

// DeleteExpiredSessions reads the oldest entries of the expiry index and,
// with an idle timeout, of the idle index (the later of creation and last
// use), at most limit of each, and deletes up to limit of them.
func (t *tx) DeleteExpiredSessions(now time.Time, idle time.Duration, limit int) ([]string, error) {
	if err := t.mustWrite("delete expired sessions"); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("postgres: delete expired sessions: limit %d, want at least 1", limit)
	}
	n := nanos(now)
	idleBefore := int64(math.MinInt64)
	if idle > 0 {
		idleBefore = nanos(now.Add(-idle))
	}
	hashes, err := t.deleteReturning(`WITH victims AS (
			SELECT hash FROM (
				(SELECT hash FROM sso_sessions WHERE expires_ns < $1 ORDER BY expires_ns LIMIT $3)
				UNION
				(SELECT hash FROM sso_sessions WHERE greatest(created_ns, last_seen_ns) < $2
					ORDER BY greatest(created_ns, last_seen_ns) LIMIT $3)
			) v LIMIT $3),
		-- Locked in hash order, as TouchSessions and DeleteUserSessions lock
		-- them, and checked again once locked: a session that a flush
		-- moved forward meanwhile stays.
		locked AS (SELECT hash FROM sso_sessions
			WHERE hash IN (SELECT hash FROM victims) AND (expires_ns < $1 OR greatest(created_ns, last_seen_ns) < $2)
			ORDER BY hash FOR UPDATE)
		DELETE FROM sso_sessions s USING locked WHERE s.hash = locked.hash RETURNING s.hash`, n, idleBefore, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: delete expired sessions: %w", err)
	}
	return hashes, nil
}

// TouchSessions moves last_seen_ns forward in one statement; the row is
// small (tokens live apart), so the update rewrites little.
//
// Every instance flushes the last-seen times of the sessions it has
// cached, with a round-robin balancer much the same ones, and instances
// started together flush together: the rows are locked in one order,
// their hashes', so that two flushes (or a flush and a deletion of
// sessions, which locks in the same order) wait for each other rather
// than deadlock. The subquery locks them, sorted, before the UPDATE
// writes them; a plain UPDATE … FROM unnest(…) would lock them in
// whatever order its plan visits them. A row another transaction moved
// forward in the meantime is checked again when its lock is granted, and
// left alone.
func (t *tx) TouchSessions(touches []store.SessionTouch) error {
	if err := t.mustWrite("touch sessions"); err != nil {
		return err
	}
	latest := make(map[string]int64, len(touches))
	for _, tc := range touches {
		if !storable(tc.Hash) {
			continue
		}
		if cur, ok := latest[tc.Hash]; !ok || nanos(tc.At) > cur {
			latest[tc.Hash] = nanos(tc.At)
		}
	}
	if len(latest) == 0 {
		return nil
	}
	hashes := slices.Sorted(maps.Keys(latest))
	ats := make([]int64, len(hashes))
	for i, h := range hashes {
		ats[i] = latest[h]
	}
	_, err := t.exec(`UPDATE sso_sessions s SET last_seen_ns = n.at
		FROM (SELECT l.hash, u.at FROM sso_sessions l JOIN unnest($1::text[], $2::bigint[]) AS u(hash, at) ON l.hash = u.hash
			WHERE l.last_seen_ns < u.at ORDER BY l.hash FOR NO KEY UPDATE OF l) AS n
		WHERE s.hash = n.hash AND s.last_seen_ns < n.at`, hashes, ats)
	if err != nil {
		return fmt.Errorf("postgres: touch sessions: %w", err)
	}
	return nil
}

func (t *tx) ForEachSession(after string, fn func(*store.Session) error) error {
	after, skip := storableAfter(after)
	return forEachPage(func(last *store.Session) ([]*store.Session, error) {
		cond := "WHERE hash > $1"
		if last != nil {
			after, skip = last.Hash, false
		}
		if skip {
			cond += " AND NOT starts_with(hash, $1)"
		}
		page, err := t.sessionsWhere(cond, "LIMIT $2", after, pageSize)
		if err != nil {
			return nil, fmt.Errorf("postgres: for each session: %w", err)
		}
		return page, nil
	}, fn)
}

// ---- single-use IDs ----

// Consume inserts (kind, id), or takes over an expired entry, in one
// statement on the primary key: of two transactions consuming one ID, in
// any instances, exactly one commits a row that says so. An ID whose entry
// is live is refused without touching the row: ON CONFLICT would lock it,
// which takes a transaction ID and writes WAL, and a replay (which anyone
// holding a captured message can repeat) must cost a read alone. The
// entry's absence from the statement's snapshot decides nothing: ON
// CONFLICT still does.
//
// The takeover compares the stored until with this instance's clock, yet
// needs no margin against clock skew, unlike pruning (see
// store.ConsumedPruneMargin): every until is the moment from which the
// consuming instance itself refuses the message, by the same clock (a
// SAML assertion's acceptable-until, an OIDC logout token's iat plus twice
// the skew, an OIDC state's login timeout, which its flow cookie's expiry
// enforces). An instance whose clock runs ahead far enough to take over a
// live entry has thus already refused the replay as expired, and writes
// nothing. docs/cluster.md says what clock skew does.
func (t *tx) Consume(kind, id string, until time.Time) (bool, error) {
	if err := t.mustWrite("consume"); err != nil {
		return false, err
	}
	if kind == "" || id == "" {
		return false, errors.New("postgres: consume: kind and id are required")
	}
	if err := checkKey("single-use id", id); err != nil {
		return false, fmt.Errorf("postgres: consume %s: %w", kind, err)
	}
	if err := checkKey("single-use kind", kind); err != nil {
		return false, fmt.Errorf("postgres: consume: %w", err)
	}
	var fresh bool
	err := t.row(`INSERT INTO sso_consumed (kind, id, until_ns) SELECT $1, $2, $3
		WHERE NOT EXISTS (SELECT 1 FROM sso_consumed WHERE kind = $1 AND id = $2 AND until_ns > $4)
		ON CONFLICT (kind, id) DO UPDATE SET until_ns = EXCLUDED.until_ns WHERE sso_consumed.until_ns <= $4
		RETURNING true`, []any{kind, id, nanos(until), time.Now().UnixNano()}, &fresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: consume %s: %w", kind, err)
	}
	return true, nil
}

func (t *tx) PruneConsumed(now time.Time, limit int) (int, error) {
	if err := t.mustWrite("prune consumed"); err != nil {
		return 0, err
	}
	if limit < 1 {
		return 0, fmt.Errorf("postgres: prune consumed: limit %d, want at least 1", limit)
	}
	// Every instance prunes: the rows are locked in one order (ties of
	// until_ns broken by the key), so that two prunes wait for each other
	// rather than deadlock.
	n, err := t.exec(`DELETE FROM sso_consumed c USING
		(SELECT kind, id FROM sso_consumed WHERE until_ns <= $1 ORDER BY until_ns, kind, id LIMIT $2 FOR UPDATE) v
		WHERE c.kind = v.kind AND c.id = v.id`, nanos(now), limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: prune consumed: %w", err)
	}
	return int(n), nil
}

func (t *tx) ForEachConsumed(fn func(kind, id string, until time.Time) error) error {
	type entry struct {
		kind, id string
		until    int64
	}
	return forEachPage(func(last *entry) ([]*entry, error) {
		var kind, id string
		if last != nil {
			kind, id = last.kind, last.id
		}
		page, err := collect(t, func(r pgx.Row) (*entry, error) {
			e := new(entry)
			err := r.Scan(&e.kind, &e.id, &e.until)
			return e, err
		}, "SELECT kind, id, until_ns FROM sso_consumed WHERE (kind, id) > ($1, $2) ORDER BY kind, id LIMIT $3", kind, id, pageSize)
		if err != nil {
			return nil, fmt.Errorf("postgres: for each single-use id: %w", err)
		}
		return page, nil
	}, func(e *entry) error { return fn(e.kind, e.id, fromNanos(e.until)) })
}

// ---- secrets ----

func (t *tx) Secret(name string, size int) ([]byte, error) {
	if name == "" || size <= 0 {
		return nil, errors.New("postgres: secret: name and a positive size are required")
	}
	return t.loadOrStore(name, func() ([]byte, error) {
		s := make([]byte, size)
		if _, err := rand.Read(s); err != nil {
			return nil, err
		}
		return s, nil
	})
}

func (t *tx) LoadOrStoreSecret(name string, value []byte) ([]byte, error) {
	if name == "" {
		return nil, errors.New("postgres: secret: name is required")
	}
	if len(value) == 0 {
		return t.loadOrStore(name, nil)
	}
	return t.loadOrStore(name, func() ([]byte, error) { return value, nil })
}

// loadOrStore returns the stored secret or, when there is none and make is
// not nil, inserts what make returns. When another transaction inserts the
// name meanwhile, the insert waits for its commit and then does nothing,
// and the read after it (a new statement, so a new snapshot) returns the
// winner's value: the first writer wins across instances.
func (t *tx) loadOrStore(name string, make func() ([]byte, error)) ([]byte, error) {
	if !storable(name) {
		return nil, fmt.Errorf("postgres: secret %q: %w", name, store.ErrInvalidValue)
	}
	var v []byte
	err := t.row("SELECT value FROM sso_secrets WHERE name = $1", []any{name}, &v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	if make == nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, store.ErrNotFound)
	}
	if err := t.mustWrite("create secret " + name); err != nil {
		return nil, err
	}
	value, err := make()
	if err != nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	err = t.row(`INSERT INTO sso_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value`,
		[]any{name, value}, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		err = t.row("SELECT value FROM sso_secrets WHERE name = $1", []any{name}, &v)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	return v, nil
}

func (t *tx) ForEachSecret(fn func(name string, value []byte) error) error {
	type secret struct {
		name  string
		value []byte
	}
	var all []secret
	err := t.rows("SELECT name, value FROM sso_secrets ORDER BY name", nil, func(r pgx.Rows) error {
		var s secret
		if err := r.Scan(&s.name, &s.value); err != nil {
			return err
		}
		all = append(all, s)
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: for each secret: %w", err)
	}
	for _, s := range all {
		if err := fn(s.name, s.value); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) DeleteSecret(name string) error {
	// A concurrent transaction deleting it too makes this one wait for its
	// commit and then delete nothing: ErrNotFound.
	return t.deleteRow("delete secret", " "+name, "DELETE FROM sso_secrets WHERE name = $1", name)
}

// ---- counts ----

// Counts counts the rows of each table. PostgreSQL keeps no exact row
// count, so this is an index-only scan per table (tens of milliseconds per
// million rows): for migration's check and metrics, not for a request.
// Exact counters kept by every write would be rows that every sign-in
// updates, and so conflict between all concurrent sign-ins.
func (t *tx) Counts() (store.Counts, error) {
	if err := t.flushAuditEarly(); err != nil {
		return store.Counts{}, err
	}
	var c store.Counts
	err := t.row(`SELECT (SELECT count(*) FROM sso_users), (SELECT count(*) FROM sso_groups),
		(SELECT count(*) FROM sso_sessions), (SELECT count(*) FROM sso_tombstones), (SELECT count(*) FROM sso_audit)`,
		nil, &c.Users, &c.Groups, &c.Sessions, &c.Tombstones, &c.AuditEvents)
	if err != nil {
		return store.Counts{}, fmt.Errorf("postgres: counts: %w", err)
	}
	return c, nil
}
