package bolt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// tx adapts one bbolt transaction to store.Tx. It is created per run of the
// caller's fn, so it holds no state that outlives a batch retry.
type tx struct {
	btx      *bolt.Tx
	writable bool
}

var _ store.Tx = (*tx)(nil)

func (t *tx) bucket(name []byte) *bolt.Bucket { return t.btx.Bucket(name) }

// mustWrite guards every write: bbolt would panic or fail obscurely on a
// write in a read-only transaction; the contract asks for ErrReadOnly.
func (t *tx) mustWrite(op string) error {
	if !t.writable {
		return fmt.Errorf("bolt: %s: %w", op, store.ErrReadOnly)
	}
	return nil
}

// pair encodes (a, b) as uvarint(len(a)) | a | b: unambiguous for any
// strings, and pair(a, "") is a prefix of exactly the keys that start with a.
func pair(a, b string) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(a)+len(b))
	k = binary.AppendUvarint(k, uint64(len(a)))
	k = append(k, a...)
	return append(k, b...)
}

func linkKey(l store.Link) []byte { return pair(l.IdP, l.Subject) }

// emailKey lower-cases so that lookups ignore case; the stored user keeps
// the spelling the IdP sent.
func emailKey(email string) []byte { return []byte(strings.ToLower(email)) }

// userNameKey lower-cases like emailKey: SCIM's userName is not case-exact.
func userNameKey(name string) []byte { return []byte(strings.ToLower(name)) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func auditUserKey(userID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(pair(userID, ""), seq)
}

// newID returns a random 128-bit ID in lowercase hex.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("bolt: random user id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
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

func (t *tx) UserByLink(idp, subject string) (*store.User, error) {
	id := t.bucket(bucketLinks).Get(pair(idp, subject))
	if id == nil {
		return nil, fmt.Errorf("bolt: user by link %s: %w", idp, store.ErrNotFound)
	}
	u, err := t.getUser(string(id))
	if err != nil {
		return nil, fmt.Errorf("bolt: user by link %s: %w", idp, err)
	}
	return u, nil
}

func (t *tx) UserByEmail(email string) (*store.User, error) {
	if email == "" {
		return nil, fmt.Errorf("bolt: user by email: %w", store.ErrNotFound)
	}
	id := t.bucket(bucketEmails).Get(emailKey(email))
	if id == nil {
		return nil, fmt.Errorf("bolt: user by email: %w", store.ErrNotFound)
	}
	u, err := t.getUser(string(id))
	if err != nil {
		return nil, fmt.Errorf("bolt: user by email: %w", err)
	}
	return u, nil
}

func (t *tx) UserByUserName(userName string) (*store.User, error) {
	if userName == "" {
		return nil, fmt.Errorf("bolt: user by user name: %w", store.ErrNotFound)
	}
	id := t.bucket(bucketUserNames).Get(userNameKey(userName))
	if id == nil {
		return nil, fmt.Errorf("bolt: user by user name: %w", store.ErrNotFound)
	}
	u, err := t.getUser(string(id))
	if err != nil {
		return nil, fmt.Errorf("bolt: user by user name: %w", err)
	}
	return u, nil
}

func (t *tx) UserByExternalID(idp, externalID string) (*store.User, error) {
	if externalID == "" {
		return nil, fmt.Errorf("bolt: user by external id in %s: %w", idp, store.ErrNotFound)
	}
	id := t.bucket(bucketExternalIDs).Get(pair(idp, externalID))
	if id == nil {
		return nil, fmt.Errorf("bolt: user by external id in %s: %w", idp, store.ErrNotFound)
	}
	u, err := t.getUser(string(id))
	if err != nil {
		return nil, fmt.Errorf("bolt: user by external id in %s: %w", idp, err)
	}
	return u, nil
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

// Record kinds counted per IdP in the counts bucket.
const (
	countUsers  = "u"
	countGroups = "g"
)

func (t *tx) count(kind, idp string) int {
	v := t.bucket(bucketCounts).Get(pair(kind, idp))
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

// addCount moves the (kind, idp) counter; it never goes below zero, and
// reaching zero deletes the key so that IdPs that are gone leave nothing.
// dropStaleKey deletes oldKey from an index when the record id no longer
// uses it (newKey differs) and the index still points at id: a key another
// record has taken since is left alone.
func dropStaleKey(b *bolt.Bucket, oldKey, newKey []byte, id string) error {
	if len(oldKey) == 0 || bytes.Equal(oldKey, newKey) || !bytes.Equal(b.Get(oldKey), []byte(id)) {
		return nil
	}
	return b.Delete(oldKey)
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
	links, err := cleanLinks(u.Links)
	if err != nil {
		return fmt.Errorf("bolt: put user %s: %w", u.ID, err)
	}
	users := t.bucket(bucketUsers)
	linkB := t.bucket(bucketLinks)
	emailB := t.bucket(bucketEmails)

	id := u.ID
	var old *store.User
	if id == "" {
		for id == "" || users.Get([]byte(id)) != nil {
			if id, err = newID(); err != nil {
				return err
			}
		}
	} else if old, err = t.getUser(id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}

	for _, l := range links {
		if owner := linkB.Get(linkKey(l)); owner != nil && string(owner) != id {
			return fmt.Errorf("bolt: put user %s: link to %s: %w", id, l.IdP, store.ErrLinkTaken)
		}
	}
	newEmail := emailKey(u.Email)
	if len(newEmail) > 0 {
		if owner := emailB.Get(newEmail); owner != nil && string(owner) != id {
			return fmt.Errorf("bolt: put user %s: %w", id, store.ErrEmailTaken)
		}
	}
	namesB := t.bucket(bucketUserNames)
	newName := userNameKey(u.UserName)
	if len(newName) > 0 {
		if owner := namesB.Get(newName); owner != nil && string(owner) != id {
			return fmt.Errorf("bolt: put user %s: %w", id, store.ErrUserNameTaken)
		}
	}
	extB := t.bucket(bucketExternalIDs)
	var newExt []byte
	if u.ExternalID != "" {
		newExt = pair(u.IdP, u.ExternalID)
		if owner := extB.Get(newExt); owner != nil && string(owner) != id {
			return fmt.Errorf("bolt: put user %s: external id in %s: %w", id, u.IdP, store.ErrExternalIDTaken)
		}
	}

	rec := *u
	rec.ID = id
	rec.Links = links
	now := time.Now()
	if rec.Created.IsZero() {
		rec.Created = now
	}
	if rec.Updated.IsZero() {
		rec.Updated = rec.Created
	}
	data, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("bolt: encode user %s: %w", id, err)
	}

	// From here on only bbolt failures can stop us, and those abort the
	// whole transaction anyway.
	if old != nil {
		keep := make(map[string]bool, len(links))
		for _, l := range links {
			keep[string(linkKey(l))] = true
		}
		for _, l := range old.Links {
			k := linkKey(l)
			if !keep[string(k)] && bytes.Equal(linkB.Get(k), []byte(id)) {
				if err := linkB.Delete(k); err != nil {
					return fmt.Errorf("bolt: put user %s: unlink: %w", id, err)
				}
			}
		}
		if err := dropStaleKey(emailB, emailKey(old.Email), newEmail, id); err != nil {
			return fmt.Errorf("bolt: put user %s: drop old email: %w", id, err)
		}
		if err := dropStaleKey(namesB, userNameKey(old.UserName), newName, id); err != nil {
			return fmt.Errorf("bolt: put user %s: drop old user name: %w", id, err)
		}
		if old.ExternalID != "" {
			if err := dropStaleKey(extB, pair(old.IdP, old.ExternalID), newExt, id); err != nil {
				return fmt.Errorf("bolt: put user %s: drop old external id: %w", id, err)
			}
		}
	}
	var oldIdP *string
	if old != nil {
		oldIdP = &old.IdP
	}
	if err := t.indexIdP(bucketIdPUsers, countUsers, oldIdP, rec.IdP, id); err != nil {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}
	if len(newName) > 0 {
		if err := namesB.Put(newName, []byte(id)); err != nil {
			return fmt.Errorf("bolt: put user %s: user name: %w", id, err)
		}
	}
	if newExt != nil {
		if err := extB.Put(newExt, []byte(id)); err != nil {
			return fmt.Errorf("bolt: put user %s: external id: %w", id, err)
		}
	}
	for _, l := range links {
		if err := linkB.Put(linkKey(l), []byte(id)); err != nil {
			return fmt.Errorf("bolt: put user %s: link: %w", id, err)
		}
	}
	if len(newEmail) > 0 {
		if err := emailB.Put(newEmail, []byte(id)); err != nil {
			return fmt.Errorf("bolt: put user %s: email: %w", id, err)
		}
	}
	if err := users.Put([]byte(id), data); err != nil {
		return fmt.Errorf("bolt: put user %s: %w", id, err)
	}
	u.ID, u.Created, u.Updated = rec.ID, rec.Created, rec.Updated
	return nil
}

// cleanLinks drops exact duplicates (which would otherwise make the index
// diff ambiguous) and rejects half-empty links, which no login can match.
func cleanLinks(in []store.Link) ([]store.Link, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]store.Link, 0, len(in))
	seen := make(map[store.Link]bool, len(in))
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
	linkB := t.bucket(bucketLinks)
	for _, l := range u.Links {
		k := linkKey(l)
		if bytes.Equal(linkB.Get(k), []byte(id)) {
			if err := linkB.Delete(k); err != nil {
				return fmt.Errorf("bolt: delete user %s: unlink: %w", id, err)
			}
		}
	}
	emailB := t.bucket(bucketEmails)
	if k := emailKey(u.Email); len(k) > 0 && bytes.Equal(emailB.Get(k), []byte(id)) {
		if err := emailB.Delete(k); err != nil {
			return fmt.Errorf("bolt: delete user %s: email: %w", id, err)
		}
	}
	namesB := t.bucket(bucketUserNames)
	if k := userNameKey(u.UserName); len(k) > 0 && bytes.Equal(namesB.Get(k), []byte(id)) {
		if err := namesB.Delete(k); err != nil {
			return fmt.Errorf("bolt: delete user %s: user name: %w", id, err)
		}
	}
	extB := t.bucket(bucketExternalIDs)
	if u.ExternalID != "" {
		if k := pair(u.IdP, u.ExternalID); bytes.Equal(extB.Get(k), []byte(id)) {
			if err := extB.Delete(k); err != nil {
				return fmt.Errorf("bolt: delete user %s: external id: %w", id, err)
			}
		}
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

// ---- sessions ----

func (t *tx) Session(hash string) (*store.Session, error) {
	v := t.bucket(bucketSessions).Get([]byte(hash))
	if v == nil {
		return nil, fmt.Errorf("bolt: session: %w", store.ErrNotFound)
	}
	s := new(store.Session)
	if err := json.Unmarshal(v, s); err != nil {
		return nil, fmt.Errorf("bolt: decode session: %w", err)
	}
	return s, nil
}

// PutSession refuses a session for a user that does not exist, so that a
// login racing a deletion cannot leave a session nothing would revoke.
func (t *tx) PutSession(s *store.Session) error {
	if err := t.mustWrite("put session"); err != nil {
		return err
	}
	if s == nil || s.Hash == "" || s.UserID == "" {
		return errors.New("bolt: put session: hash and user id are required")
	}
	if t.bucket(bucketUsers).Get([]byte(s.UserID)) == nil {
		return fmt.Errorf("bolt: put session: user %s: %w", s.UserID, store.ErrNotFound)
	}
	sessions := t.bucket(bucketSessions)
	bySession := t.bucket(bucketUserSessions)
	nameIDKey := sessionNameIDKey(s.IdP, s.Logout.NameID, s.Hash)
	if old := sessions.Get([]byte(s.Hash)); old != nil {
		var prev sessionRef
		if err := json.Unmarshal(old, &prev); err == nil {
			if prev.UserID != s.UserID {
				if err := bySession.Delete(pair(prev.UserID, s.Hash)); err != nil {
					return fmt.Errorf("bolt: put session: %w", err)
				}
			}
			if k := sessionNameIDKey(prev.IdP, prev.Logout.NameID, s.Hash); k != nil && !bytes.Equal(k, nameIDKey) {
				if err := t.bucket(bucketSessionNameIDs).Delete(k); err != nil {
					return fmt.Errorf("bolt: put session: %w", err)
				}
			}
		}
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("bolt: encode session: %w", err)
	}
	if err := sessions.Put([]byte(s.Hash), data); err != nil {
		return fmt.Errorf("bolt: put session: %w", err)
	}
	if err := bySession.Put(pair(s.UserID, s.Hash), []byte{}); err != nil {
		return fmt.Errorf("bolt: put session: index: %w", err)
	}
	// Last-seen updates re-put unchanged sessions: skip the index write.
	if idx := t.bucket(bucketSessionNameIDs); nameIDKey != nil && idx.Get(nameIDKey) == nil {
		if err := idx.Put(nameIDKey, []byte{}); err != nil {
			return fmt.Errorf("bolt: put session: index: %w", err)
		}
	}
	return nil
}

// sessionRef is the part of a stored session its indexes are keyed on.
type sessionRef struct {
	UserID string `json:"user_id"`
	IdP    string `json:"idp"`
	Logout struct {
		NameID string `json:"name_id"`
	} `json:"logout"`
}

// sessionNameIDKey is a session's key in session_name_ids, or nil when it
// has no SAML NameID. pair(nameID, "") is a prefix of exactly the keys of
// that NameID, so pair(idp, pair(nameID, "")) is the prefix to look up.
func sessionNameIDKey(idp, nameID, hash string) []byte {
	if nameID == "" {
		return nil
	}
	return pair(idp, string(pair(nameID, hash)))
}

// sessionNameIDKeyOf decodes a stored session's session_name_ids key.
func sessionNameIDKeyOf(hash string, raw []byte) ([]byte, error) {
	var ref sessionRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	return sessionNameIDKey(ref.IdP, ref.Logout.NameID, hash), nil
}

// SessionsByNameID reads the index and checks each entry against its
// session, so that entries an older build left behind (see the package
// doc) are skipped rather than trusted.
func (t *tx) SessionsByNameID(idp, nameID string) ([]*store.Session, error) {
	idx := t.bucket(bucketSessionNameIDs)
	if idx == nil || nameID == "" {
		return nil, nil
	}
	prefix := sessionNameIDKey(idp, nameID, "")
	var out []*store.Session
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		s, err := t.Session(string(k[len(prefix):]))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bolt: sessions by name id: %w", err)
		}
		if s.IdP == idp && s.Logout.NameID == nameID {
			out = append(out, s)
		}
	}
	return out, nil
}

func (t *tx) DeleteSession(hash string) error {
	if err := t.mustWrite("delete session"); err != nil {
		return err
	}
	s, err := t.Session(hash)
	if err != nil {
		return err
	}
	if err := t.deleteSession(s.UserID, hash); err != nil {
		return fmt.Errorf("bolt: delete session: %w", err)
	}
	return nil
}

func (t *tx) deleteSession(userID, hash string) error {
	sessions := t.bucket(bucketSessions)
	if idx := t.bucket(bucketSessionNameIDs); idx != nil {
		if raw := sessions.Get([]byte(hash)); raw != nil {
			k, err := sessionNameIDKeyOf(hash, raw)
			if err != nil {
				return err
			}
			if k != nil {
				if err := idx.Delete(k); err != nil {
					return err
				}
			}
		}
	}
	if err := sessions.Delete([]byte(hash)); err != nil {
		return err
	}
	return t.bucket(bucketUserSessions).Delete(pair(userID, hash))
}

// UserSessions walks the user's session index; an index entry without
// its session (never expected) is skipped.
func (t *tx) UserSessions(userID string) ([]*store.Session, error) {
	prefix := pair(userID, "")
	var out []*store.Session
	c := t.bucket(bucketUserSessions).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		s, err := t.Session(string(k[len(prefix):]))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bolt: sessions of user %s: %w", userID, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (t *tx) DeleteUserSessions(userID string) ([]string, error) {
	if err := t.mustWrite("delete user sessions"); err != nil {
		return nil, err
	}
	hashes, err := t.deleteUserSessions(userID)
	if err != nil {
		return nil, fmt.Errorf("bolt: delete sessions of user %s: %w", userID, err)
	}
	return hashes, nil
}

func (t *tx) deleteUserSessions(userID string) ([]string, error) {
	prefix := pair(userID, "")
	var hashes []string
	c := t.bucket(bucketUserSessions).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		hashes = append(hashes, string(k[len(prefix):]))
	}
	for _, h := range hashes {
		if err := t.deleteSession(userID, h); err != nil {
			return nil, err
		}
	}
	return hashes, nil
}

// DeleteExpiredSessions scans all sessions: it runs from a periodic
// janitor, not on the request path, and an expiry index would cost a write
// on every last-seen update instead.
func (t *tx) DeleteExpiredSessions(now time.Time, idle time.Duration) ([]string, error) {
	if err := t.mustWrite("delete expired sessions"); err != nil {
		return nil, err
	}
	type victim struct{ user, hash string }
	var victims []victim
	var s struct {
		UserID   string    `json:"user_id"`
		Created  time.Time `json:"created"`
		Expires  time.Time `json:"expires"`
		LastSeen time.Time `json:"last_seen"`
	}
	err := t.bucket(bucketSessions).ForEach(func(k, v []byte) error {
		s.UserID, s.Created, s.Expires, s.LastSeen = "", time.Time{}, time.Time{}, time.Time{}
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("decode session: %w", err)
		}
		expired := s.Expires.Before(now)
		if !expired && idle > 0 {
			seen := s.LastSeen
			if seen.Before(s.Created) {
				seen = s.Created
			}
			expired = seen.Add(idle).Before(now)
		}
		if expired {
			victims = append(victims, victim{s.UserID, string(k)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: delete expired sessions: %w", err)
	}
	hashes := make([]string, 0, len(victims))
	for _, v := range victims {
		if err := t.deleteSession(v.user, v.hash); err != nil {
			return nil, fmt.Errorf("bolt: delete expired sessions: %w", err)
		}
		hashes = append(hashes, v.hash)
	}
	return hashes, nil
}

// ---- single-use IDs ----

func (t *tx) Consume(kind, id string, until time.Time) (bool, error) {
	if err := t.mustWrite("consume"); err != nil {
		return false, err
	}
	if kind == "" || id == "" {
		return false, errors.New("bolt: consume: kind and id are required")
	}
	b := t.bucket(bucketConsumed)
	k := pair(kind, id)
	if v := b.Get(k); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > time.Now().UnixNano() {
		return false, nil
	}
	if err := b.Put(k, u64(uint64(until.UnixNano()))); err != nil {
		return false, fmt.Errorf("bolt: consume %s: %w", kind, err)
	}
	return true, nil
}

func (t *tx) PruneConsumed(now time.Time) (int, error) {
	if err := t.mustWrite("prune consumed"); err != nil {
		return 0, err
	}
	b := t.bucket(bucketConsumed)
	cutoff := now.UnixNano()
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= cutoff {
			dead = append(dead, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bolt: prune consumed: %w", err)
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("bolt: prune consumed: %w", err)
		}
	}
	return len(dead), nil
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
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	data, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("bolt: encode audit event: %w", err)
	}
	// Keys only grow, so fill leaf pages completely instead of splitting
	// them in half.
	b.FillPercent = 1.0
	if err := b.Put(u64(seq), data); err != nil {
		return fmt.Errorf("bolt: audit: %w", err)
	}
	if e.UserID != "" {
		if err := t.bucket(bucketAuditByUser).Put(auditUserKey(e.UserID, seq), []byte{}); err != nil {
			return fmt.Errorf("bolt: audit: user index: %w", err)
		}
	}
	return nil
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
