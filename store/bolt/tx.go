package bolt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// tx adapts one bbolt transaction to store.Tx. It is created per run of the
// caller's fn, so it holds no state that outlives a batch retry.
type tx struct {
	btx      *bolt.Tx
	writable bool
	// rehearsal: a read transaction running an Update's fn ahead of it,
	// whose writes only read where they would write (rehearse.go).
	rehearsal bool
	// contended, for a background batch that may yield (commit.go),
	// reports a sign-in waiting for it.
	contended func() bool
}

var _ store.Tx = (*tx)(nil)

// Contended reports whether another Update waits while this transaction,
// a background batch, holds the write lock (read by store.RunItems).
func (t *tx) Contended() bool { return t.contended != nil && t.contended() }

func (t *tx) bucket(name []byte) bucket { return bucket{t.btx.Bucket(name), t.rehearsal} }

// bucket is a bbolt bucket as a transaction sees it: in a rehearsal its
// writes only walk to the page they would change, which is what reads
// that page from disk.
type bucket struct {
	*bolt.Bucket
	rehearsal bool
}

func (b bucket) Put(k, v []byte) error {
	if b.rehearsal {
		b.Get(k)
		return nil
	}
	return b.Bucket.Put(k, v)
}

func (b bucket) Delete(k []byte) error {
	if b.rehearsal {
		b.Get(k)
		return nil
	}
	return b.Bucket.Delete(k)
}

func (b bucket) NextSequence() (uint64, error) {
	if b.rehearsal {
		return b.Sequence() + 1, nil
	}
	return b.Bucket.NextSequence()
}

// mustWrite guards every write: bbolt would panic or fail obscurely on a
// write in a read-only transaction; the contract asks for ErrReadOnly. A
// rehearsal goes on: its bucket writes only read.
func (t *tx) mustWrite(op string) error {
	if !t.writable && !t.rehearsal {
		return fmt.Errorf("bolt: %s: %w", op, store.ErrReadOnly)
	}
	return nil
}

// ---- users ----

func (t *tx) getUser(id string) (*store.User, error) {
	v := t.bucket(bucketUsers).Get([]byte(id))
	if v == nil {
		return nil, store.ErrNotFound
	}
	u := new(store.User)
	if err := json.Unmarshal(v, u); err != nil {
		return nil, fmt.Errorf("bolt: decode user %s: %w", id, err)
	}
	return u, nil
}

func (t *tx) User(id string) (*store.User, error) {
	u, err := t.getUser(id)
	if err != nil {
		return nil, fmt.Errorf("bolt: user %s: %w", id, err)
	}
	return u, nil
}

// UserForDelete is User: bolt has one writer at a time, so there is no
// lock to take.
func (t *tx) UserForDelete(id string) (*store.User, error) { return t.User(id) }

func (t *tx) UserByLink(idp, subject string) (*store.User, error) {
	return byIndex(t, bucketLinks, pair(idp, subject), false, t.getUser, "user by link", idp)
}

func (t *tx) UserByEmail(email string) (*store.User, error) {
	return byIndex(t, bucketEmails, emailKey(email), email == "", t.getUser, "user by email", "")
}

func (t *tx) UserByUserName(userName string) (*store.User, error) {
	return byIndex(t, bucketUserNames, userNameKey(userName), userName == "", t.getUser, "user by user name", "")
}

func (t *tx) UserByExternalID(idp, externalID string) (*store.User, error) {
	return byIndex(t, bucketExternalIDs, pair(idp, externalID), externalID == "", t.getUser, "user by external id in", idp)
}

// UserHolding is the plain read: bolt has one writer at a time, so there
// is no lock to leave out.
func (t *tx) UserHolding(key store.UserKey, idp, value string) (*store.User, error) {
	switch key {
	case store.KeyLink:
		return t.UserByLink(idp, value)
	case store.KeyEmail:
		return t.UserByEmail(value)
	case store.KeyUserName:
		return t.UserByUserName(value)
	case store.KeyExternalID:
		return t.UserByExternalID(idp, value)
	}
	return nil, fmt.Errorf("bolt: user holding: unknown key %d", key)
}

// LockUsers does nothing: bolt has one writer at a time.
func (t *tx) LockUsers([]string) error { return nil }

// byIndex reads the record whose ID an index holds under key. No record is
// indexed under an empty value, so empty is not found without a lookup.
// The error names the lookup (what, and the IdP when there is one).
func byIndex[T any](t *tx, index, key []byte, empty bool, get func(id string) (*T, error), what, idp string) (*T, error) {
	fail := func(err error) (*T, error) {
		if idp != "" {
			return nil, fmt.Errorf("bolt: %s %s: %w", what, idp, err)
		}
		return nil, fmt.Errorf("bolt: %s: %w", what, err)
	}
	if empty {
		return fail(store.ErrNotFound)
	}
	id := t.bucket(index).Get(key)
	if id == nil {
		return fail(store.ErrNotFound)
	}
	v, err := get(string(id))
	if err != nil {
		return fail(err)
	}
	return v, nil
}

// ListUsers walks the idp_users index: skipping to startIndex costs a
// key-only step per skipped user, and the total comes from a counter.
func (t *tx) ListUsers(idp string, startIndex, count int) ([]*store.User, int, error) {
	total := t.count(countUsers, idp)
	var out []*store.User
	err := t.page(bucketIdPUsers, idp, startIndex, count, func(id string) error {
		u, err := t.getUser(id)
		if err != nil {
			return err
		}
		out = append(out, u)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("bolt: list users of %s: %w", idp, err)
	}
	return out, total, nil
}

// UsersOfIdP looks the IDs up in the per-IdP index ListUsers pages
// through; bolt has one writer at a time, so there is no lock to leave out.
func (t *tx) UsersOfIdP(idp string, ids []string) ([]string, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	index := t.bucket(bucketIdPUsers)
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if index.Get(pair(idp, id)) != nil {
			out = append(out, id)
		}
	}
	return out, nil
}

// page visits the IDs under pair(scope, "") in the index bucket from the
// 1-based position startIndex, at most count of them.
func (t *tx) page(index []byte, scope string, startIndex, count int, fn func(id string) error) error {
	if count <= 0 {
		return nil
	}
	prefix := pair(scope, "")
	c := t.bucket(index).Cursor()
	k, _ := c.Seek(prefix)
	for skip := max(startIndex, 1) - 1; skip > 0 && k != nil && bytes.HasPrefix(k, prefix); skip-- {
		k, _ = c.Next()
	}
	for n := 0; n < count && k != nil && bytes.HasPrefix(k, prefix); n++ {
		if err := fn(string(k[len(prefix):])); err != nil {
			return err
		}
		k, _ = c.Next()
	}
	return nil
}

// Record kinds in the counts bucket: users and groups per IdP, the rest
// under the empty IdP.
const (
	countUsers      = "u"
	countGroups     = "g"
	countSessions   = "s"
	countTombstones = "t"
	countAudit      = "a"
)

func (t *tx) count(kind, idp string) int {
	v := t.bucket(bucketCounts).Get(pair(kind, idp))
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

// putChanged puts k = v unless b holds exactly that already. A bbolt Put
// dirties the leaf it lands in and every branch above it, which the commit
// then writes out even when nothing changed; a returning user's sign-in
// rewrites the user record, and its unchanged index entries would
// otherwise cost a dozen page writes (docs/architecture.md, "Performance
// budgets").
func putChanged(b bucket, k, v []byte) error {
	if old := b.Get(k); old != nil && bytes.Equal(old, v) {
		return nil
	}
	return b.Put(k, v)
}

// indexKey is a record's entry in an index that maps a value to the one
// record holding it: a user's IdP links, email, userName and externalId
// (userKeys), a group's name and externalId (groupKeys). Those lists are
// the one statement of what a record's entries are: puts claim and move
// them, deletes drop them, and Check expects them.
type indexKey struct {
	what   string // in errors and Check's reports
	bucket []byte
	key    []byte
	taken  error // when another record holds key
}

// hasKey reports whether keys hold key in bucket.
func hasKey(keys []indexKey, bucket, key []byte) bool {
	return slices.ContainsFunc(keys, func(k indexKey) bool { return bytes.Equal(k.bucket, bucket) && bytes.Equal(k.key, key) })
}

// claimKeys checks that no record but id holds one of keys. A put claims
// every key before it writes anything, so a conflict leaves the store as
// it was.
func (t *tx) claimKeys(id string, keys []indexKey) error {
	for _, k := range keys {
		if owner := t.bucket(k.bucket).Get(k.key); owner != nil && string(owner) != id {
			return fmt.Errorf("%s: %w", k.what, k.taken)
		}
	}
	return nil
}

// moveKeys moves record id's index entries from old to new (either may be
// nil): an entry of old that new lacks is dropped when it still names id
// (one another record has taken since is left alone), and new's are put.
func (t *tx) moveKeys(id string, old, new []indexKey) error {
	for _, k := range old {
		if hasKey(new, k.bucket, k.key) {
			continue
		}
		b := t.bucket(k.bucket)
		if bytes.Equal(b.Get(k.key), []byte(id)) {
			if err := b.Delete(k.key); err != nil {
				return fmt.Errorf("drop old %s: %w", k.what, err)
			}
		}
	}
	for _, k := range new {
		if err := putChanged(t.bucket(k.bucket), k.key, []byte(id)); err != nil {
			return fmt.Errorf("%s: %w", k.what, err)
		}
	}
	return nil
}

// indexIdP keeps a record's per-IdP index entry and the per-IdP count in
// step when the record is new (oldIdP nil) or moves to another IdP.
func (t *tx) indexIdP(bucket []byte, kind string, oldIdP *string, newIdP, id string) error {
	if oldIdP != nil && *oldIdP == newIdP {
		return nil
	}
	b := t.bucket(bucket)
	if oldIdP != nil {
		if err := b.Delete(pair(*oldIdP, id)); err != nil {
			return fmt.Errorf("idp index: %w", err)
		}
		if err := t.addCount(kind, *oldIdP, -1); err != nil {
			return fmt.Errorf("count: %w", err)
		}
	}
	if err := b.Put(pair(newIdP, id), []byte{}); err != nil {
		return fmt.Errorf("idp index: %w", err)
	}
	if err := t.addCount(kind, newIdP, 1); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	return nil
}

// addCount moves the (kind, idp) counter; it never goes below zero, and
// reaching zero deletes the key so that IdPs that are gone leave nothing.
func (t *tx) addCount(kind, idp string, delta int) error {
	n := max(t.count(kind, idp)+delta, 0)
	b := t.bucket(bucketCounts)
	if n == 0 {
		return b.Delete(pair(kind, idp))
	}
	return b.Put(pair(kind, idp), u64(uint64(n)))
}

// PutUser creates or replaces u. An empty u.ID gets a fresh random ID, and
// zero Created/Updated get the current time; all three are set on u. All
// conflicts are checked before the first write, so ErrEmailTaken and
// ErrLinkTaken leave the store as it was.
func (t *tx) PutUser(u *store.User) error {
	if err := t.mustWrite("put user"); err != nil {
		return err
	}
	if u == nil {
		return errors.New("bolt: put user: nil user")
	}
	links, err := store.NormalLinks(u.Links)
	if err != nil {
		return fmt.Errorf("bolt: put user %s: %w", u.ID, err)
	}
	if err := checkUserValues(u, links); err != nil {
		return fmt.Errorf("bolt: put user %s: %w", u.ID, err)
	}
	users := t.bucket(bucketUsers)
	id := u.ID
	var old *store.User
	if id == "" {
		if id, err = newID(users); err != nil {
			return err
		}
	} else if old, err = t.getUser(id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}

	rec := *u
	rec.ID = id
	rec.Links = links
	keys := userKeys(&rec)
	if err := t.claimKeys(id, keys); err != nil {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}
	var oldKeys []indexKey
	if old != nil {
		oldKeys = userKeys(old)
	}
	store.FillTimes(&rec.Created, &rec.Updated, time.Now())
	data, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("bolt: encode user %s: %w", id, err)
	}

	// From here on only bbolt failures can stop us, and those abort the
	// whole transaction anyway.
	if err := t.moveKeys(id, oldKeys, keys); err != nil {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}
	var oldIdP *string
	if old != nil {
		oldIdP = &old.IdP
	}
	if err := t.indexIdP(bucketIdPUsers, countUsers, oldIdP, rec.IdP, id); err != nil {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}
	if err := users.Put([]byte(id), data); err != nil {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}
	u.ID, u.Created, u.Updated = rec.ID, rec.Created, rec.Updated
	return nil
}

// userKeys lists u's entries in the unique indexes (see indexKey).
func userKeys(u *store.User) []indexKey {
	keys := make([]indexKey, 0, len(u.Links)+3)
	for _, l := range u.Links {
		keys = append(keys, indexKey{"link", bucketLinks, linkKey(l), store.ErrLinkTaken})
	}
	if u.Email != "" {
		keys = append(keys, indexKey{"email", bucketEmails, emailKey(u.Email), store.ErrEmailTaken})
	}
	if u.UserName != "" {
		keys = append(keys, indexKey{"userName", bucketUserNames, userNameKey(u.UserName), store.ErrUserNameTaken})
	}
	if u.ExternalID != "" {
		keys = append(keys, indexKey{"externalId", bucketExternalIDs, pair(u.IdP, u.ExternalID), store.ErrExternalIDTaken})
	}
	return keys
}

// checkUserValues applies the store's rule on the values it indexes
// (store.CheckIndexed) before anything is written.
func checkUserValues(u *store.User, links []store.Link) error {
	vals := []struct{ what, v string }{
		{"userName", u.UserName}, {"externalId", u.ExternalID}, {"email", u.Email},
		{"display name", u.DisplayName}, {"idp", u.IdP}, {"id", u.ID},
	}
	for _, l := range links {
		vals = append(vals, struct{ what, v string }{"link idp", l.IdP}, struct{ what, v string }{"link subject", l.Subject})
	}
	for _, c := range vals {
		if err := store.CheckIndexed(c.what, c.v); err != nil {
			return err
		}
	}
	return nil
}

// DeleteUser removes the user, its index entries and its sessions. Audit
// events about the user stay: they are history.
func (t *tx) DeleteUser(id string) error {
	if err := t.mustWrite("delete user"); err != nil {
		return err
	}
	u, err := t.getUser(id)
	if err != nil {
		return fmt.Errorf("bolt: delete user %s: %w", id, err)
	}
	if err := t.moveKeys(id, userKeys(u), nil); err != nil {
		return fmt.Errorf("bolt: delete user %s: %w", id, err)
	}
	if err := t.bucket(bucketIdPUsers).Delete(pair(u.IdP, id)); err != nil {
		return fmt.Errorf("bolt: delete user %s: idp index: %w", id, err)
	}
	if err := t.addCount(countUsers, u.IdP, -1); err != nil {
		return fmt.Errorf("bolt: delete user %s: count: %w", id, err)
	}
	if err := t.leaveAllGroups(id); err != nil {
		return fmt.Errorf("bolt: delete user %s: %w", id, err)
	}
	if _, err := t.deleteUserSessions(id); err != nil {
		return fmt.Errorf("bolt: delete user %s: %w", id, err)
	}
	if err := t.bucket(bucketUsers).Delete([]byte(id)); err != nil {
		return fmt.Errorf("bolt: delete user %s: %w", id, err)
	}
	return nil
}

// ForEachUser visits users in ID order after the given ID. fn must not
// write users while it iterates (bbolt cursors do not survive changes to
// their bucket); collect IDs and write after it returns.
func (t *tx) ForEachUser(after string, fn func(*store.User) error) error {
	c := t.bucket(bucketUsers).Cursor()
	k, v := c.Seek([]byte(after))
	if k != nil && after != "" && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil; k, v = c.Next() {
		u := new(store.User)
		if err := json.Unmarshal(v, u); err != nil {
			return fmt.Errorf("bolt: decode user %s: %w", k, err)
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

// ---- single-use IDs ----

// Consume keeps consumed_until (time-ordered) in step with consumed, so
// that pruning reads only what is due.
func (t *tx) Consume(kind, id string, until time.Time) (bool, error) {
	if err := t.mustWrite("consume"); err != nil {
		return false, err
	}
	if kind == "" || id == "" {
		return false, errors.New("bolt: consume: kind and id are required")
	}
	// The limit is the ID's (the contract), and the kind's apart: the
	// key joins both, and bbolt takes keys far longer than either.
	if err := store.CheckKey("single-use id", id); err != nil {
		return false, fmt.Errorf("bolt: consume %s: %w", kind, err)
	}
	if err := store.CheckKey("single-use kind", kind); err != nil {
		return false, fmt.Errorf("bolt: consume: %w", err)
	}
	b := t.bucket(bucketConsumed)
	idx := appendMostly(t.bucket(bucketConsumedUntil))
	k := pair(kind, id)
	if v := b.Get(k); len(v) == 8 {
		old := binary.BigEndian.Uint64(v)
		if old > encTime(time.Now()) {
			return false, nil
		}
		if err := idx.Delete(timeKey(old, string(k))); err != nil {
			return false, fmt.Errorf("bolt: consume %s: %w", kind, err)
		}
	}
	at := encTime(until)
	if err := b.Put(k, u64(at)); err != nil {
		return false, fmt.Errorf("bolt: consume %s: %w", kind, err)
	}
	if err := idx.Put(timeKey(at, string(k)), []byte{}); err != nil {
		return false, fmt.Errorf("bolt: consume %s: %w", kind, err)
	}
	return true, nil
}

func (t *tx) PruneConsumed(now time.Time, limit int) (int, error) {
	if err := t.mustWrite("prune consumed"); err != nil {
		return 0, err
	}
	if limit < 1 {
		return 0, fmt.Errorf("bolt: prune consumed: limit %d, want at least 1", limit)
	}
	cutoff := encTime(now)
	var due [][]byte
	c := t.bucket(bucketConsumedUntil).Cursor()
	for k, _ := c.First(); k != nil && len(due) < limit; k, _ = c.Next() {
		if len(k) < 8 || binary.BigEndian.Uint64(k) > cutoff {
			break
		}
		due = append(due, bytes.Clone(k))
	}
	b := t.bucket(bucketConsumed)
	n := 0
	for _, k := range due {
		if err := t.bucket(bucketConsumedUntil).Delete(k); err != nil {
			return 0, fmt.Errorf("bolt: prune consumed: %w", err)
		}
		// Only an entry whose expiry is still the indexed one goes.
		if v := b.Get(k[8:]); bytes.Equal(v, k[:8]) {
			if err := b.Delete(k[8:]); err != nil {
				return 0, fmt.Errorf("bolt: prune consumed: %w", err)
			}
			n++
		}
	}
	return n, nil
}

func (t *tx) ForEachConsumed(fn func(kind, id string, until time.Time) error) error {
	return t.bucket(bucketConsumed).ForEach(func(k, v []byte) error {
		kind, id, ok := unpair(k)
		if !ok || len(v) != 8 {
			return fmt.Errorf("bolt: malformed single-use id entry %q", k)
		}
		return fn(kind, id, decTime(binary.BigEndian.Uint64(v)))
	})
}

// ---- secrets ----

func (t *tx) Secret(name string, size int) ([]byte, error) {
	if name == "" || size <= 0 {
		return nil, errors.New("bolt: secret: name and a positive size are required")
	}
	b := t.bucket(bucketSecrets)
	if v := b.Get([]byte(name)); v != nil {
		return bytes.Clone(v), nil
	}
	if err := t.mustWrite("create secret " + name); err != nil {
		return nil, err
	}
	s := make([]byte, size)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("bolt: secret %s: %w", name, err)
	}
	if err := b.Put([]byte(name), s); err != nil {
		return nil, fmt.Errorf("bolt: secret %s: %w", name, err)
	}
	return bytes.Clone(s), nil
}

func (t *tx) LoadOrStoreSecret(name string, value []byte) ([]byte, error) {
	if name == "" {
		return nil, errors.New("bolt: secret: name is required")
	}
	b := t.bucket(bucketSecrets)
	if v := b.Get([]byte(name)); v != nil {
		return bytes.Clone(v), nil
	}
	if len(value) == 0 {
		return nil, fmt.Errorf("bolt: secret %s: %w", name, store.ErrNotFound)
	}
	if err := t.mustWrite("store secret " + name); err != nil {
		return nil, err
	}
	if err := b.Put([]byte(name), bytes.Clone(value)); err != nil {
		return nil, fmt.Errorf("bolt: secret %s: %w", name, err)
	}
	return bytes.Clone(value), nil
}

func (t *tx) ForEachSecret(fn func(name string, value []byte) error) error {
	return t.bucket(bucketSecrets).ForEach(func(k, v []byte) error {
		return fn(string(k), bytes.Clone(v))
	})
}

func (t *tx) DeleteSecret(name string) error {
	if err := t.mustWrite("delete secret " + name); err != nil {
		return err
	}
	b := t.bucket(bucketSecrets)
	if name == "" || b.Get([]byte(name)) == nil {
		return fmt.Errorf("bolt: delete secret %s: %w", name, store.ErrNotFound)
	}
	if err := b.Delete([]byte(name)); err != nil {
		return fmt.Errorf("bolt: delete secret %s: %w", name, err)
	}
	return nil
}

// ---- audit ----

func (t *tx) Audit(e store.Event) error {
	if err := t.mustWrite("audit"); err != nil {
		return err
	}
	b := t.bucket(bucketAudit)
	// bbolt's bucket sequence is part of the transaction: a rolled-back
	// Update gives its numbers back, and the counter survives restarts.
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("bolt: audit: %w", err)
	}
	e = e.Stamped(time.Now())
	e.Seq = seq
	return t.putEvent(&e)
}

func (t *tx) putEvent(e *store.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("bolt: encode audit event: %w", err)
	}
	b := t.bucket(bucketAudit)
	// Keys only grow, so fill leaf pages completely instead of splitting
	// them in half.
	b.FillPercent = 1.0
	if err := b.Put(u64(e.Seq), data); err != nil {
		return fmt.Errorf("bolt: audit: %w", err)
	}
	if e.UserID != "" {
		if err := t.bucket(bucketAuditByUser).Put(auditUserKey(e.UserID, e.Seq), []byte{}); err != nil {
			return fmt.Errorf("bolt: audit: user index: %w", err)
		}
	}
	if err := t.addCount(countAudit, "", 1); err != nil {
		return fmt.Errorf("bolt: audit: count: %w", err)
	}
	return nil
}

func (t *tx) ImportAuditEvent(e store.Event) error {
	if err := t.mustWrite("import audit event"); err != nil {
		return err
	}
	b := t.bucket(bucketAudit)
	last := uint64(0)
	if k, _ := b.Cursor().Last(); len(k) == 8 {
		last = binary.BigEndian.Uint64(k)
	}
	if e.Seq == 0 || e.Seq <= last {
		return fmt.Errorf("bolt: import audit event: seq %d is not after the last stored one (%d)", e.Seq, last)
	}
	if e.Seq > b.Sequence() {
		if err := b.SetSequence(e.Seq); err != nil {
			return fmt.Errorf("bolt: import audit event: %w", err)
		}
	}
	return t.putEvent(&e)
}

// PruneAudit deletes from the oldest end of the audit bucket and stops at
// the first event that is recent enough: events are appended in time
// order, so that one and those after it stay. An event stamped after now
// is out of that order (a clock stepped back since) and is passed over.
func (t *tx) PruneAudit(before, now time.Time, limit int) (int, error) {
	if err := t.mustWrite("prune audit"); err != nil {
		return 0, err
	}
	if limit < 1 {
		return 0, fmt.Errorf("bolt: prune audit: limit %d, want at least 1", limit)
	}
	type victim struct {
		seq    []byte
		userID string
	}
	var due []victim
	var e struct {
		Time   time.Time `json:"time"`
		UserID string    `json:"user_id"`
	}
	c := t.bucket(bucketAudit).Cursor()
	for k, v := c.First(); k != nil && len(due) < limit; k, v = c.Next() {
		e.Time, e.UserID = time.Time{}, ""
		if err := json.Unmarshal(v, &e); err != nil {
			return 0, fmt.Errorf("bolt: prune audit: decode event %x: %w", k, err)
		}
		if e.Time.After(now) {
			continue
		}
		if !e.Time.Before(before) {
			break
		}
		due = append(due, victim{bytes.Clone(k), e.UserID})
	}
	for _, d := range due {
		if err := t.bucket(bucketAudit).Delete(d.seq); err != nil {
			return 0, fmt.Errorf("bolt: prune audit: %w", err)
		}
		if d.userID != "" {
			if err := t.bucket(bucketAuditByUser).Delete(append(pair(d.userID, ""), d.seq...)); err != nil {
				return 0, fmt.Errorf("bolt: prune audit: user index: %w", err)
			}
		}
	}
	if err := t.addCount(countAudit, "", -len(due)); err != nil {
		return 0, fmt.Errorf("bolt: prune audit: count: %w", err)
	}
	return len(due), nil
}

// Counts reads the counters every write keeps in step.
func (t *tx) Counts() (store.Counts, error) {
	var c store.Counts
	prefix := func(kind string) int {
		n := 0
		p := pair(kind, "")
		cur := t.bucket(bucketCounts).Cursor()
		for k, v := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = cur.Next() {
			if len(v) == 8 {
				n += int(binary.BigEndian.Uint64(v))
			}
		}
		return n
	}
	c.Users = prefix(countUsers)
	c.Groups = prefix(countGroups)
	c.Sessions = t.count(countSessions, "")
	c.Tombstones = t.count(countTombstones, "")
	c.AuditEvents = t.count(countAudit, "")
	return c, nil
}

// AuditEvents returns matching events in Seq order. Since is inclusive and
// Until exclusive, so consecutive windows neither overlap nor leave gaps.
// With UserID set it walks that user's index only.
func (t *tx) AuditEvents(q store.AuditQuery) ([]store.Event, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	audit := t.bucket(bucketAudit)
	var out []store.Event
	// take decodes one event and reports whether the walk should go on.
	take := func(v []byte) (bool, error) {
		var e store.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("bolt: decode audit event: %w", err)
		}
		if (q.Type != "" && e.Type != q.Type) ||
			(q.UserID != "" && e.UserID != q.UserID) ||
			(!q.Since.IsZero() && e.Time.Before(q.Since)) ||
			(!q.Until.IsZero() && !e.Time.Before(q.Until)) {
			return true, nil
		}
		out = append(out, e)
		return len(out) < limit, nil
	}
	if q.After == ^uint64(0) {
		return nil, nil
	}
	start := q.After + 1
	if q.UserID == "" {
		c := audit.Cursor()
		for k, v := c.Seek(u64(start)); k != nil; k, v = c.Next() {
			more, err := take(v)
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
		}
		return out, nil
	}
	prefix := pair(q.UserID, "")
	c := t.bucket(bucketAuditByUser).Cursor()
	for k, _ := c.Seek(auditUserKey(q.UserID, start)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != len(prefix)+8 {
			continue
		}
		v := audit.Get(k[len(prefix):])
		if v == nil {
			continue
		}
		more, err := take(v)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	return out, nil
}
