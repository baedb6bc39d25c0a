package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// maxProblems bounds the problems a CheckReport lists; the rest are counted.
const maxProblems = 100

// CheckReport is what Check found.
type CheckReport struct {
	Path   string
	Schema int
	// Records counts the records of each kind, read one by one (not from
	// the counters, which Check verifies against these).
	Records store.Counts
	// Problems describe each inconsistency, the first maxProblems of them;
	// More counts the others.
	Problems []string
	More     int
}

// OK reports whether Check found nothing wrong.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

func (r *CheckReport) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else {
		r.More++
	}
}

// Check verifies, read-only and in one read transaction, that the store is
// consistent: every index entry points at a record that has the value the
// entry is keyed on, every record's indexed values have their entries, and
// the counters match the records. It is what `caddy sso check --store`
// runs. Damage is reported in the CheckReport; the error is for a check
// that could not run (ctx ended, an unreadable bucket). On a large store
// it reads every record and index entry once or twice (tens of seconds at
// a million users), and its read transaction delays commits that must grow
// the file's mapping; run it on a copy, or when traffic is low.
func (db *DB) Check(ctx context.Context) (*CheckReport, error) {
	r := &CheckReport{Path: db.path}
	err := db.bdb.View(func(btx *bolt.Tx) error {
		c := &checker{ctx: ctx, t: &tx{btx: btx}, r: r}
		return c.run()
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: check %s: %w", db.path, err)
	}
	return r, nil
}

type checker struct {
	ctx context.Context
	t   *tx
	r   *CheckReport
	n   int // records visited, for the ctx checks
}

func (c *checker) tick() error {
	if c.n++; c.n%10_000 == 0 {
		return c.ctx.Err()
	}
	return nil
}

// each visits a bucket's entries; a missing bucket is a problem, not an
// error.
func (c *checker) each(name []byte, fn func(k, v []byte) error) error {
	b := c.t.bucket(name)
	if b.Bucket == nil {
		return nil // reported by run
	}
	return b.ForEach(func(k, v []byte) error {
		if err := c.tick(); err != nil {
			return err
		}
		return fn(k, v)
	})
}

// expect reports a missing or wrong index entry for a record.
func (c *checker) expect(index, key []byte, want, what string) bool {
	got := c.t.bucket(index).Get(key)
	switch {
	case got == nil:
		c.r.problem("%s: no %s entry %q for %s", index, what, key, want)
	case want != "" && string(got) != want:
		c.r.problem("%s: entry %q for the %s of %s points at %q", index, key, what, want, got)
	default:
		return true
	}
	return false
}

func (c *checker) run() error {
	meta := c.t.bucket(bucketMeta)
	if meta.Bucket == nil {
		c.r.problem("no meta bucket: not a caddy-sso store")
		return nil
	}
	c.r.Schema, _ = strconv.Atoi(string(meta.Get(keySchema)))
	if c.r.Schema != SchemaVersion {
		c.r.problem("schema version %q, this build checks %d", meta.Get(keySchema), SchemaVersion)
	}
	if meta.Get(keyUpgrading) != nil {
		c.r.problem("an upgrade did not finish: open the store read-write once to complete it")
	}
	missing := false
	for _, name := range dataBuckets() {
		if c.t.bucket(name).Bucket == nil {
			c.r.problem("bucket %s is missing", name)
			missing = true
		}
	}
	if missing {
		return nil
	}
	counts := map[string]uint64{}
	for _, step := range []func(map[string]uint64) error{c.users, c.groups, c.sessions, c.consumed, c.audit} {
		if err := step(counts); err != nil {
			return err
		}
	}
	counts[string(pair(countTombstones, ""))] = uint64(c.t.bucket(bucketTombstones).Stats().KeyN)
	c.r.Records.Tombstones = int(counts[string(pair(countTombstones, ""))])
	return c.counters(counts)
}

func (c *checker) users(counts map[string]uint64) error {
	err := c.each(bucketUsers, func(k, v []byte) error {
		id := string(k)
		u := new(store.User)
		if err := json.Unmarshal(v, u); err != nil {
			c.r.problem("users: record %q does not decode: %v", k, err)
			return nil
		}
		c.r.Records.Users++
		if u.ID != id {
			c.r.problem("users: record under %q has ID %q", k, u.ID)
		}
		for _, k := range userKeys(u) {
			c.expect(k.bucket, k.key, id, k.what)
		}
		c.expect(bucketIdPUsers, pair(u.IdP, id), "", "IdP")
		counts[string(pair(countUsers, u.IdP))]++
		return nil
	})
	if err != nil {
		return err
	}
	// Each index entry's user holds the value it is keyed on.
	userHas := func(index []byte, has func(u *store.User, key []byte) bool) error {
		return c.each(index, func(k, v []byte) error {
			u, err := c.t.getUser(string(v))
			if err != nil {
				c.r.problem("%s: entry %q points at user %q, which does not exist", index, k, v)
				return nil
			}
			if !has(u, k) {
				c.r.problem("%s: entry %q points at user %q, who does not have that value", index, k, v)
			}
			return nil
		})
	}
	for _, index := range [][]byte{bucketLinks, bucketEmails, bucketUserNames, bucketExternalIDs} {
		if err := userHas(index, func(u *store.User, k []byte) bool { return hasKey(userKeys(u), index, k) }); err != nil {
			return err
		}
	}
	return c.each(bucketIdPUsers, func(k, _ []byte) error {
		idp, id, ok := unpair(k)
		if u, err := c.t.getUser(id); !ok || err != nil || u.IdP != idp {
			c.r.problem("idp_users: entry %q has no user of that IdP", k)
		}
		return nil
	})
}

func (c *checker) groups(counts map[string]uint64) error {
	// For the user_groups pass: each group's name, and how many
	// memberships the groups hold, every one with its entry (unmatched:
	// not so).
	names := map[string]string{}
	memberships, unmatched := 0, false
	err := c.each(bucketGroups, func(k, v []byte) error {
		id := string(k)
		g := new(store.Group)
		if err := json.Unmarshal(v, g); err != nil {
			c.r.problem("groups: record %q does not decode: %v", k, err)
			return nil
		}
		c.r.Records.Groups++
		if g.ID != id {
			c.r.problem("groups: record under %q has ID %q", k, g.ID)
		}
		for _, k := range groupKeys(g) {
			c.expect(k.bucket, k.key, id, k.what)
		}
		c.expect(bucketIdPGroups, pair(g.IdP, id), "", "IdP")
		names[id] = g.DisplayName
		memberships += len(g.Members)
		for _, m := range g.Members {
			if c.t.bucket(bucketUsers).Get([]byte(m)) == nil {
				c.r.problem("groups: group %s has member %s, who does not exist", id, m)
			}
			if !c.expect(bucketUserGroups, pair(m, id), g.DisplayName, "membership") {
				unmatched = true
			}
		}
		counts[string(pair(countGroups, g.IdP))]++
		return nil
	})
	if err != nil {
		return err
	}
	groupHas := func(index []byte, has func(g *store.Group, key []byte) bool) error {
		return c.each(index, func(k, v []byte) error {
			g, err := c.t.getGroup(string(v))
			if err != nil || !has(g, k) {
				c.r.problem("%s: entry %q points at group %q, which does not have that value", index, k, v)
			}
			return nil
		})
	}
	for _, index := range [][]byte{bucketGroupNames, bucketGroupExternalIDs} {
		if err := groupHas(index, func(g *store.Group, k []byte) bool { return hasKey(groupKeys(g), index, k) }); err != nil {
			return err
		}
	}
	if err := c.each(bucketIdPGroups, func(k, _ []byte) error {
		idp, id, ok := unpair(k)
		if g, err := c.t.getGroup(id); !ok || err != nil || g.IdP != idp {
			c.r.problem("idp_groups: entry %q has no group of that IdP", k)
		}
		return nil
	}); err != nil {
		return err
	}
	// Every membership has its entry (checked above): when the entries are
	// as many, each is one, and no group is decoded again per entry (a
	// directory's group of 50,000 would be decoded 50,000 times). Only a
	// store where they differ is read again, to name the entries that are
	// not memberships.
	entries := 0
	err = c.each(bucketUserGroups, func(k, v []byte) error {
		entries++
		_, groupID, ok := unpair(k)
		if name, found := names[groupID]; !ok || !found || name != string(v) {
			c.r.problem("user_groups: entry %q names no group called %q", k, v)
		}
		return nil
	})
	if err != nil || (entries == memberships && !unmatched) {
		return err
	}
	return c.each(bucketUserGroups, func(k, v []byte) error {
		userID, groupID, ok := unpair(k)
		g, err := c.t.getGroup(groupID)
		if !ok || err != nil || g.DisplayName != string(v) {
			return nil // reported above
		}
		if _, member := slices.BinarySearch(g.Members, userID); !member {
			c.r.problem("user_groups: user %s is not a member of group %s", userID, groupID)
		}
		return nil
	})
}

func (c *checker) sessions(counts map[string]uint64) error {
	err := c.each(bucketSessions, func(k, v []byte) error {
		hash := string(k)
		rec, err := decodeSessionRec(v)
		if err != nil {
			c.r.problem("sessions: record %q does not decode: %v", k, err)
			return nil
		}
		c.r.Records.Sessions++
		counts[string(pair(countSessions, ""))]++
		if c.t.bucket(bucketUsers).Get([]byte(rec.UserID)) == nil {
			c.r.problem("sessions: session %s belongs to user %s, who does not exist", hash, rec.UserID)
		}
		seen, created, ok := decodeSeen(c.t.bucket(bucketSessionSeen).Get(k))
		if !ok || created != rec.Created {
			c.r.problem("session_seen: no valid entry for session %s", hash)
		}
		keys := keysOf(hash, rec, seen)
		for _, m := range c.t.sessionIndexes(sessionKeys{}, keys) {
			if m.new != nil && m.b.Get(m.new) == nil {
				c.r.problem("%s: no entry %q for session %s", m.name, m.new, hash)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Entries keyed by hash belong to a session.
	for _, index := range [][]byte{bucketSessionSeen, bucketSessionTokens} {
		if err := c.each(index, func(k, _ []byte) error {
			if c.t.bucket(bucketSessions).Get(k) == nil {
				c.r.problem("%s: entry for session %q, which does not exist", index, k)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	// Index entries match their session's keys.
	matches := func(index []byte, hashOf func(k []byte) (string, bool), keyOf func(sessionKeys) []byte) error {
		return c.each(index, func(k, _ []byte) error {
			hash, ok := hashOf(k)
			var rec *sessionRec
			var seen uint64
			var err error
			if ok {
				rec, seen, err = c.t.getSession(hash)
			}
			if !ok || err != nil || !bytes.Equal(keyOf(keysOf(hash, rec, seen)), k) {
				c.r.problem("%s: entry %q matches no session", index, k)
			}
			return nil
		})
	}
	afterTime := func(k []byte) (string, bool) { return string(k[min(8, len(k)):]), len(k) > 8 }
	afterPair := func(k []byte) (string, bool) {
		_, rest, ok := unpair(k)
		if !ok {
			return "", false
		}
		_, hash, ok := unpair([]byte(rest))
		return hash, ok
	}
	afterUser := func(k []byte) (string, bool) { _, hash, ok := unpair(k); return hash, ok }
	for _, ix := range []struct {
		index  []byte
		hashOf func([]byte) (string, bool)
		keyOf  func(sessionKeys) []byte
	}{
		{bucketUserSessions, afterUser, func(k sessionKeys) []byte { return k.user }},
		{bucketSessionExpiry, afterTime, func(k sessionKeys) []byte { return k.expiry }},
		{bucketSessionIdle, afterTime, func(k sessionKeys) []byte { return k.idle }},
		{bucketSessionSubjects, afterPair, func(k sessionKeys) []byte { return k.subject }},
		{bucketSessionSIDs, afterPair, func(k sessionKeys) []byte { return k.sid }},
	} {
		if err := matches(ix.index, ix.hashOf, ix.keyOf); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) consumed(map[string]uint64) error {
	err := c.each(bucketConsumed, func(k, v []byte) error {
		if len(v) != 8 {
			c.r.problem("consumed: entry %q has a malformed expiry", k)
			return nil
		}
		c.expect(bucketConsumedUntil, timeKey(binary.BigEndian.Uint64(v), string(k)), "", "expiry")
		return nil
	})
	if err != nil {
		return err
	}
	return c.each(bucketConsumedUntil, func(k, _ []byte) error {
		if len(k) < 8 || !bytes.Equal(c.t.bucket(bucketConsumed).Get(k[8:]), k[:8]) {
			c.r.problem("consumed_until: entry %q matches no single-use ID", k)
		}
		return nil
	})
}

func (c *checker) audit(counts map[string]uint64) error {
	err := c.each(bucketAudit, func(k, v []byte) error {
		var e struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal(v, &e); err != nil || len(k) != 8 {
			c.r.problem("audit: event %x does not decode", k)
			return nil
		}
		c.r.Records.AuditEvents++
		counts[string(pair(countAudit, ""))]++
		if e.UserID != "" {
			c.expect(bucketAuditByUser, append(pair(e.UserID, ""), k...), "", "user")
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.each(bucketAuditByUser, func(k, _ []byte) error {
		userID, rest, ok := unpair(k)
		var e struct {
			UserID string `json:"user_id"`
		}
		raw := c.t.bucket(bucketAudit).Get([]byte(rest))
		if !ok || len(rest) != 8 || raw == nil || json.Unmarshal(raw, &e) != nil || e.UserID != userID {
			c.r.problem("audit_by_user: entry %q matches no event of that user", k)
		}
		return nil
	})
}

// counters compares the counts bucket with what the records gave.
func (c *checker) counters(want map[string]uint64) error {
	got := map[string]uint64{}
	err := c.each(bucketCounts, func(k, v []byte) error {
		if len(v) != 8 {
			c.r.problem("counts: entry %q is malformed", k)
			return nil
		}
		got[string(k)] = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return err
	}
	for k, n := range want {
		if n != 0 && got[k] != n {
			kind, idp, _ := unpair([]byte(k))
			c.r.problem("counts: %s of %q is %d, the records say %d", countName(kind), idp, got[k], n)
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			kind, idp, _ := unpair([]byte(k))
			c.r.problem("counts: %s of %q is %d, the records say 0", countName(kind), idp, n)
		}
	}
	return nil
}

func countName(kind string) string {
	switch kind {
	case countUsers:
		return "users"
	case countGroups:
		return "groups"
	case countSessions:
		return "sessions"
	case countTombstones:
		return "tombstones"
	case countAudit:
		return "audit events"
	}
	return "kind " + strconv.Quote(kind)
}
