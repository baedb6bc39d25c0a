package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// A session lives in several small pieces (see the package doc), so that
// each job touches only what it needs: resolving a cookie reads the record
// and its last-seen value; a last-seen flush rewrites 16 bytes and moves one
// idle-index key; the sweep walks two time-ordered indexes from their
// oldest end; only sign-in and logout read or write the sealed tokens.

// sessionFormat is the first byte of a session record. Schema 2 records
// were JSON and start with '{'.
const sessionFormat = 1

// sessionRec is a session record without its hash (the key) and its last
// seen time (session_seen).
type sessionRec struct {
	UserID, IdP                       string
	Subject, SubjectFormat, SessionID string
	Created, Expires                  uint64 // encTime
	// AuthTime (encTime) follows Expires only when the IdP said it
	// (store.Session.AuthTime): a record without it, written before it was
	// kept or since, ends after Expires, so an earlier build reads it.
	AuthTime uint64
}

func (r *sessionRec) encode() []byte {
	n := 1 + 24 + 5*binary.MaxVarintLen64 + len(r.UserID) + len(r.IdP) + len(r.Subject) + len(r.SubjectFormat) + len(r.SessionID)
	b := make([]byte, 0, n)
	b = append(b, sessionFormat)
	for _, s := range [...]string{r.UserID, r.IdP, r.Subject, r.SubjectFormat, r.SessionID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, r.Created)
	b = binary.BigEndian.AppendUint64(b, r.Expires)
	if r.AuthTime != zeroTime {
		b = binary.BigEndian.AppendUint64(b, r.AuthTime)
	}
	return b
}

var errBadSession = errors.New("malformed session record")

func decodeSessionRec(v []byte) (*sessionRec, error) {
	if len(v) == 0 || v[0] != sessionFormat {
		return nil, errBadSession
	}
	r := new(sessionRec)
	rest := v[1:]
	for _, dst := range [...]*string{&r.UserID, &r.IdP, &r.Subject, &r.SubjectFormat, &r.SessionID} {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return nil, errBadSession
		}
		*dst = string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
	}
	switch len(rest) {
	case 16: // no AuthTime
	case 24:
		r.AuthTime = binary.BigEndian.Uint64(rest[16:])
	default:
		return nil, errBadSession
	}
	r.Created = binary.BigEndian.Uint64(rest)
	r.Expires = binary.BigEndian.Uint64(rest[8:])
	return r, nil
}

func recOf(s *store.Session) *sessionRec {
	return &sessionRec{
		UserID: s.UserID, IdP: s.IdP,
		Subject: s.Logout.Subject, SubjectFormat: s.Logout.StoredSubjectFormat(), SessionID: s.Logout.SessionID,
		Created: encTime(s.Created), Expires: encTime(s.Expires), AuthTime: encTime(s.AuthTime),
	}
}

func (r *sessionRec) session(hash string, seen uint64) *store.Session {
	s := &store.Session{
		Hash: hash, UserID: r.UserID, IdP: r.IdP,
		Created: decTime(r.Created), Expires: decTime(r.Expires), LastSeen: decTime(seen),
		Logout:   store.LogoutInfo{Subject: r.Subject, SessionID: r.SessionID},
		AuthTime: decTime(r.AuthTime),
	}
	// The SAML NameID's qualifiers share the format's field
	// (store.LogoutInfo.StoredSubjectFormat): no new record format.
	s.Logout.SetStoredSubjectFormat(r.SubjectFormat)
	return s
}

// seenValue is a session_seen value: LastSeen, then Created, so that the
// idle-index key (the later of the two) is computed without the record.
func seenValue(lastSeen, created uint64) []byte {
	return binary.BigEndian.AppendUint64(u64(lastSeen), created)
}

func decodeSeen(v []byte) (lastSeen, created uint64, ok bool) {
	if len(v) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
}

// idleTime is what the idle timeout counts from: the later of LastSeen and
// Created, so a session never seen since sign-in idles from its creation.
func idleTime(lastSeen, created uint64) uint64 { return max(lastSeen, created) }

// sessionKeys are the index keys a session has.
type sessionKeys struct {
	user, expiry, idle, subject, sid []byte
}

func keysOf(hash string, r *sessionRec, lastSeen uint64) sessionKeys {
	k := sessionKeys{
		user:   pair(r.UserID, hash),
		expiry: timeKey(r.Expires, hash),
		idle:   timeKey(idleTime(lastSeen, r.Created), hash),
	}
	if r.Subject != "" {
		k.subject = pair(r.IdP, string(pair(r.Subject, hash)))
	}
	if r.SessionID != "" {
		k.sid = pair(r.IdP, string(pair(r.SessionID, hash)))
	}
	return k
}

// getSession reads a session's record and last-seen time. A record in the
// schema 2 JSON form (left by an interrupted upgrade) is an error here:
// Open finishes the upgrade before anything reads sessions.
func (t *tx) getSession(hash string) (*sessionRec, uint64, error) {
	v := t.bucket(bucketSessions).Get([]byte(hash))
	if v == nil {
		return nil, 0, store.ErrNotFound
	}
	r, err := decodeSessionRec(v)
	if err != nil {
		return nil, 0, fmt.Errorf("decode session: %w", err)
	}
	seen, _, _ := decodeSeen(t.bucket(bucketSessionSeen).Get([]byte(hash)))
	return r, seen, nil
}

func (t *tx) Session(hash string) (*store.Session, error) {
	r, seen, err := t.getSession(hash)
	if err != nil {
		return nil, fmt.Errorf("bolt: session: %w", err)
	}
	return r.session(hash, seen), nil
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
	for _, c := range []struct{ what, v string }{
		{"session hash", s.Hash}, {"logout subject", s.Logout.Subject}, {"logout session id", s.Logout.SessionID},
	} {
		if err := store.CheckKey(c.what, c.v); err != nil {
			return fmt.Errorf("bolt: put session: %w", err)
		}
	}
	if t.bucket(bucketUsers).Get([]byte(s.UserID)) == nil {
		return fmt.Errorf("bolt: put session: user %s: %w", s.UserID, store.ErrNotFound)
	}
	r := recOf(s)
	seen := encTime(s.LastSeen)
	if err := t.writeSession(s.Hash, r, seen); err != nil {
		return fmt.Errorf("bolt: put session: %w", err)
	}
	return nil
}

// writeSession stores a session record and moves its index entries from
// whatever an existing record had.
func (t *tx) writeSession(hash string, r *sessionRec, seen uint64) error {
	var ok sessionKeys // the existing record's keys, if any
	old, oldSeen, err := t.getSession(hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := t.addCount(countSessions, "", 1); err != nil {
			return fmt.Errorf("count: %w", err)
		}
	case err != nil:
		return err
	default:
		ok = keysOf(hash, old, oldSeen)
	}
	moves := t.sessionIndexes(ok, keysOf(hash, r, seen))
	for _, m := range moves {
		if m.old != nil && !bytes.Equal(m.old, m.new) {
			if err := m.b.Delete(m.old); err != nil {
				return fmt.Errorf("index %s: %w", m.name, err)
			}
		}
	}
	if err := t.bucket(bucketSessions).Put([]byte(hash), r.encode()); err != nil {
		return err
	}
	if err := t.bucket(bucketSessionSeen).Put([]byte(hash), seenValue(seen, r.Created)); err != nil {
		return err
	}
	for _, m := range moves {
		if m.new != nil && !bytes.Equal(m.old, m.new) {
			if err := m.b.Put(m.new, []byte{}); err != nil {
				return fmt.Errorf("index %s: %w", m.name, err)
			}
		}
	}
	return nil
}

type indexMove struct {
	name     []byte
	b        bucket
	old, new []byte
}

func (t *tx) sessionIndexes(old, new sessionKeys) []indexMove {
	return []indexMove{
		{bucketUserSessions, t.bucket(bucketUserSessions), old.user, new.user},
		{bucketSessionExpiry, appendMostly(t.bucket(bucketSessionExpiry)), old.expiry, new.expiry},
		{bucketSessionIdle, appendMostly(t.bucket(bucketSessionIdle)), old.idle, new.idle},
		{bucketSessionSubjects, t.bucket(bucketSessionSubjects), old.subject, new.subject},
		{bucketSessionSIDs, t.bucket(bucketSessionSIDs), old.sid, new.sid},
	}
}

func (t *tx) DeleteSession(hash string) error {
	if err := t.mustWrite("delete session"); err != nil {
		return err
	}
	if err := t.deleteSession(hash); err != nil {
		return fmt.Errorf("bolt: delete session: %w", err)
	}
	return nil
}

// deleteSession removes the record, its last-seen value, its tokens and
// its index entries; ErrNotFound when there is no record.
func (t *tx) deleteSession(hash string) error {
	r, seen, err := t.getSession(hash)
	if err != nil {
		return err
	}
	for _, m := range t.sessionIndexes(keysOf(hash, r, seen), sessionKeys{}) {
		if m.old == nil {
			continue
		}
		if err := m.b.Delete(m.old); err != nil {
			return fmt.Errorf("index %s: %w", m.name, err)
		}
	}
	for _, b := range [][]byte{bucketSessions, bucketSessionSeen, bucketSessionTokens} {
		if err := t.bucket(b).Delete([]byte(hash)); err != nil {
			return err
		}
	}
	return t.addCount(countSessions, "", -1)
}

func (t *tx) SessionTokens(hash string) ([]byte, error) {
	if t.bucket(bucketSessions).Get([]byte(hash)) == nil {
		return nil, fmt.Errorf("bolt: session tokens: %w", store.ErrNotFound)
	}
	v := t.bucket(bucketSessionTokens).Get([]byte(hash))
	if v == nil {
		return nil, nil
	}
	return bytes.Clone(v), nil
}

func (t *tx) PutSessionTokens(hash string, sealed []byte) error {
	if err := t.mustWrite("put session tokens"); err != nil {
		return err
	}
	if t.bucket(bucketSessions).Get([]byte(hash)) == nil {
		return fmt.Errorf("bolt: put session tokens: %w", store.ErrNotFound)
	}
	b := t.bucket(bucketSessionTokens)
	var err error
	if len(sealed) == 0 {
		err = b.Delete([]byte(hash))
	} else {
		err = b.Put([]byte(hash), bytes.Clone(sealed))
	}
	if err != nil {
		return fmt.Errorf("bolt: put session tokens: %w", err)
	}
	return nil
}

// UserSessions walks the user's session index; an index entry without
// its session (never expected) is skipped.
func (t *tx) UserSessions(userID string) ([]*store.Session, error) {
	var out []*store.Session
	err := t.sessionsUnder(bucketUserSessions, pair(userID, ""), func(s *store.Session) bool { return s.UserID == userID }, &out)
	if err != nil {
		return nil, fmt.Errorf("bolt: sessions of user %s: %w", userID, err)
	}
	return out, nil
}

// sessionsUnder reads the sessions whose hashes follow prefix in an index,
// keeping those match accepts: an index entry is checked against the record
// it names rather than trusted.
func (t *tx) sessionsUnder(index, prefix []byte, match func(*store.Session) bool, out *[]*store.Session) error {
	c := t.bucket(index).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		hash := string(k[len(prefix):])
		r, seen, err := t.getSession(hash)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if s := r.session(hash, seen); match(s) {
			*out = append(*out, s)
		}
	}
	return nil
}

// LockSessions does nothing: bolt has one writer at a time, so there is
// no lock order to keep (see store.Tx.LockSessions).
func (t *tx) LockSessions(string, []string) error { return nil }

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
		if err := t.deleteSession(h); err != nil {
			return nil, err
		}
	}
	return hashes, nil
}

// SessionsBySubject reads the subject index and checks each entry against
// its session.
func (t *tx) SessionsBySubject(idp, subject string) ([]*store.Session, error) {
	if subject == "" {
		return nil, nil
	}
	var out []*store.Session
	prefix := pair(idp, string(pair(subject, "")))
	err := t.sessionsUnder(bucketSessionSubjects, prefix, func(s *store.Session) bool {
		return s.IdP == idp && s.Logout.Subject == subject
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("bolt: sessions by subject: %w", err)
	}
	return out, nil
}

func (t *tx) SessionsBySessionID(idp, sessionID string) ([]*store.Session, error) {
	if sessionID == "" {
		return nil, nil
	}
	var out []*store.Session
	prefix := pair(idp, string(pair(sessionID, "")))
	err := t.sessionsUnder(bucketSessionSIDs, prefix, func(s *store.Session) bool {
		return s.IdP == idp && s.Logout.SessionID == sessionID
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("bolt: sessions by session id: %w", err)
	}
	return out, nil
}

// DeleteExpiredSessions walks the expiry index, then the idle index, from
// their oldest ends, so it reads only entries that are due (and stops at
// limit of them).
func (t *tx) DeleteExpiredSessions(now time.Time, idle time.Duration, limit int) ([]string, error) {
	if err := t.mustWrite("delete expired sessions"); err != nil {
		return nil, err
	}
	due, err := t.dueSessions(now, idle, limit)
	if err != nil {
		return nil, fmt.Errorf("bolt: delete expired sessions: %w", err)
	}
	if t.rehearsal {
		t.readOn(due)
	}
	var hashes []string
	for _, d := range due {
		err := t.deleteSession(d.hash)
		if errors.Is(err, store.ErrNotFound) {
			// An index entry without its record (damage; Check reports
			// it): drop the entry, so that sweeps do not stop at it.
			if err := t.bucket(d.index).Delete(d.key); err != nil {
				return nil, fmt.Errorf("bolt: delete expired sessions: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bolt: delete expired sessions: %w", err)
		}
		hashes = append(hashes, d.hash)
	}
	return hashes, nil
}

// readOn, in a rehearsal, reads the index page after the last entry due:
// the delete empties index pages from the oldest end and merges the last,
// nearly empty, with the page after it. A page's worth of keys is read
// (a 4 KiB page holds at most 56 of these 72-byte keys).
func (t *tx) readOn(due []dueSession) {
	last := map[string][]byte{}
	for _, d := range due {
		last[string(d.index)] = d.key
	}
	for index, key := range last {
		c := t.bucket([]byte(index)).Cursor()
		k, _ := c.Seek(key)
		for i := 0; k != nil && i < 64; i++ {
			k, _ = c.Next()
		}
	}
}

// dueSession is a session DeleteExpiredSessions removes, and the index
// entry that named it.
type dueSession struct {
	hash       string
	index, key []byte
}

// dueSessions reads up to limit sessions due at now from the oldest ends
// of the expiry index, then the idle index.
func (t *tx) dueSessions(now time.Time, idle time.Duration, limit int) ([]dueSession, error) {
	if limit < 1 {
		return nil, fmt.Errorf("limit %d, want at least 1", limit)
	}
	var due []dueSession
	listed := map[string]bool{}
	collect := func(index []byte, before uint64) {
		c := t.bucket(index).Cursor()
		for k, _ := c.First(); k != nil && len(due) < limit; k, _ = c.Next() {
			if len(k) < 8 || binary.BigEndian.Uint64(k) >= before {
				break
			}
			if h := string(k[8:]); !listed[h] {
				listed[h] = true
				due = append(due, dueSession{h, index, bytes.Clone(k)})
			}
		}
	}
	collect(bucketSessionExpiry, encTime(now))
	if idle > 0 && len(due) < limit {
		collect(bucketSessionIdle, encTime(now.Add(-idle)))
	}
	return due, nil
}

// TouchSessions rewrites each session's 16-byte last-seen value and moves
// its idle-index key; the record itself is not read or written.
func (t *tx) TouchSessions(touches []store.SessionTouch) error {
	if err := t.mustWrite("touch sessions"); err != nil {
		return err
	}
	seenB := t.bucket(bucketSessionSeen)
	idleB := appendMostly(t.bucket(bucketSessionIdle))
	for _, tc := range touches {
		v := seenB.Get([]byte(tc.Hash))
		old, created, ok := decodeSeen(v)
		if !ok {
			continue // no such session
		}
		at := encTime(tc.At)
		if at <= old {
			continue
		}
		if from, to := idleTime(old, created), idleTime(at, created); from != to {
			if err := idleB.Delete(timeKey(from, tc.Hash)); err != nil {
				return fmt.Errorf("bolt: touch sessions: %w", err)
			}
			if err := idleB.Put(timeKey(to, tc.Hash), []byte{}); err != nil {
				return fmt.Errorf("bolt: touch sessions: %w", err)
			}
		}
		if err := seenB.Put([]byte(tc.Hash), seenValue(at, created)); err != nil {
			return fmt.Errorf("bolt: touch sessions: %w", err)
		}
	}
	return nil
}

// ForEachSession visits sessions in hash order after the given hash.
func (t *tx) ForEachSession(after string, fn func(*store.Session) error) error {
	seenB := t.bucket(bucketSessionSeen)
	c := t.bucket(bucketSessions).Cursor()
	k, v := c.Seek([]byte(after))
	if k != nil && after != "" && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil; k, v = c.Next() {
		r, err := decodeSessionRec(v)
		if err != nil {
			return fmt.Errorf("bolt: decode session: %w", err)
		}
		seen, _, _ := decodeSeen(seenB.Get(k))
		if err := fn(r.session(string(k), seen)); err != nil {
			return err
		}
	}
	return nil
}

// v2Session is a session record as schema 2 stored it, in JSON.
type v2Session struct {
	UserID   string    `json:"user_id"`
	IdP      string    `json:"idp"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	LastSeen time.Time `json:"last_seen"`
	Logout   struct {
		IDToken      string `json:"id_token"`
		SessionIndex string `json:"session_index"`
		NameID       string `json:"name_id"`
		NameIDFormat string `json:"name_id_format"`
	} `json:"logout"`
}

// upgradeSession converts one schema 2 record in place (see migrate.go);
// a record already converted is left alone. It reports the record and
// last-seen time either way.
func (t *tx) upgradeSession(hash, raw []byte) (*sessionRec, uint64, error) {
	if len(raw) > 0 && raw[0] != '{' {
		r, err := decodeSessionRec(raw)
		if err != nil {
			return nil, 0, err
		}
		seen, _, _ := decodeSeen(t.bucket(bucketSessionSeen).Get(hash))
		return r, seen, nil
	}
	var old v2Session
	if err := json.Unmarshal(raw, &old); err != nil {
		return nil, 0, err
	}
	r := &sessionRec{
		UserID: old.UserID, IdP: old.IdP,
		Subject: old.Logout.NameID, SubjectFormat: old.Logout.NameIDFormat, SessionID: old.Logout.SessionIndex,
		Created: encTime(old.Created), Expires: encTime(old.Expires),
	}
	seen := encTime(old.LastSeen)
	if err := t.bucket(bucketSessions).Put(hash, r.encode()); err != nil {
		return nil, 0, err
	}
	if err := t.bucket(bucketSessionSeen).Put(hash, seenValue(seen, r.Created)); err != nil {
		return nil, 0, err
	}
	if old.Logout.IDToken != "" {
		if err := t.bucket(bucketSessionTokens).Put(hash, store.PlainIDTokenBlob(old.Logout.IDToken)); err != nil {
			return nil, 0, err
		}
	}
	return r, seen, nil
}
