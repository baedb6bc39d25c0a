package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// ---- groups ----

func (t *tx) getGroup(id string) (*store.Group, error) {
	v := t.bucket(bucketGroups).Get([]byte(id))
	if v == nil {
		return nil, store.ErrNotFound
	}
	g, err := decodeGroup(v)
	if err != nil {
		return nil, fmt.Errorf("bolt: decode group %s: %w", id, err)
	}
	return g, nil
}

func (t *tx) Group(id string) (*store.Group, error) {
	g, err := t.getGroup(id)
	if err != nil {
		return nil, fmt.Errorf("bolt: group %s: %w", id, err)
	}
	return g, nil
}

func (t *tx) GroupByName(idp, displayName string) (*store.Group, error) {
	return byIndex(t, bucketGroupNames, groupNameKey(idp, displayName), displayName == "", t.getGroup, "group by name", "")
}

func (t *tx) GroupByExternalID(idp, externalID string) (*store.Group, error) {
	return byIndex(t, bucketGroupExternalIDs, pair(idp, externalID), externalID == "", t.getGroup, "group by external id", "")
}

func (t *tx) ListGroups(idp string, startIndex, count int) ([]*store.Group, int, error) {
	total := t.count(countGroups, idp)
	var out []*store.Group
	err := t.page(bucketIdPGroups, idp, startIndex, count, func(id string) error {
		g, err := t.getGroup(id)
		if err != nil {
			return err
		}
		out = append(out, g)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("bolt: list groups of %s: %w", idp, err)
	}
	return out, total, nil
}

func (t *tx) GroupsOfUser(userID string) ([]store.GroupRef, error) {
	prefix := pair(userID, "")
	var out []store.GroupRef
	c := t.bucket(bucketUserGroups).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		out = append(out, store.GroupRef{ID: string(k[len(prefix):]), DisplayName: string(v)})
	}
	return out, nil
}

// scimNames returns the display names of the user's groups, from the
// member index.
func (t *tx) scimNames(userID string) map[string]bool {
	prefix := pair(userID, "")
	names := map[string]bool{}
	c := t.bucket(bucketUserGroups).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		names[string(v)] = true
	}
	return names
}

func (t *tx) PutGroup(g *store.Group) error {
	if err := t.mustWrite("put group"); err != nil {
		return err
	}
	if g == nil {
		return errors.New("bolt: put group: nil group")
	}
	if strings.TrimSpace(g.DisplayName) == "" {
		return fmt.Errorf("bolt: put group %s: display name is required", g.ID)
	}
	for _, c := range []struct{ what, v string }{{"display name", g.DisplayName}, {"externalId", g.ExternalID}} {
		if err := store.CheckIndexed(c.what, c.v); err != nil {
			return fmt.Errorf("bolt: put group %s: %w", g.ID, err)
		}
	}
	if err := store.CheckKey("idp", g.IdP); err != nil {
		return fmt.Errorf("bolt: put group %s: %w", g.ID, err)
	}
	members := store.NormalMembers(g.Members)
	groups := t.bucket(bucketGroups)
	id := g.ID
	var old *store.Group
	var err error
	if id == "" {
		if id, err = newID(groups); err != nil {
			return err
		}
	} else if old, err = t.getGroup(id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bolt: put group %s: %w", id, err)
	}
	var oldMembers []string
	if old != nil {
		oldMembers = old.Members
	}
	renamed := old != nil && old.DisplayName != g.DisplayName
	touched := store.MembersTouched(oldMembers, members, renamed)
	// Only those who join are looked up: the others are members already,
	// which are users (DeleteUser takes a user out of every group; `caddy
	// sso check --store` reports a member who is not). Looking them all up
	// again made every change to a group of 50,000 read 50,000 users
	// inside the write transaction.
	users := t.bucket(bucketUsers)
	for _, m := range touched {
		if !joins(m, oldMembers, members) {
			continue
		}
		if users.Get([]byte(m)) == nil {
			return fmt.Errorf("bolt: put group %s: member %s: %w", id, m, store.ErrNotFound)
		}
	}

	rec := *g
	rec.ID = id
	rec.Members = members
	keys := groupKeys(&rec)
	if err := t.claimKeys(id, keys); err != nil {
		return fmt.Errorf("bolt: put group %s: %w", id, err)
	}
	var oldKeys []indexKey
	if old != nil {
		oldKeys = groupKeys(old)
	}
	store.FillTimes(&rec.Created, &rec.Updated, time.Now())
	data, err := encodeGroup(&rec)
	if err != nil {
		return fmt.Errorf("bolt: encode group %s: %w", id, err)
	}

	// From here on only bbolt failures can stop us.
	if err := t.moveKeys(id, oldKeys, keys); err != nil {
		return fmt.Errorf("bolt: put group %s: %w", id, err)
	}
	var oldIdP *string
	if old != nil {
		oldIdP = &old.IdP
	}
	if err := t.indexIdP(bucketIdPGroups, countGroups, oldIdP, rec.IdP, id); err != nil {
		return fmt.Errorf("bolt: put group %s: %w", id, err)
	}
	if err := groups.Put([]byte(id), data); err != nil {
		return fmt.Errorf("bolt: put group %s: %w", id, err)
	}
	if err := t.syncMembers(id, rec.DisplayName, members, touched, rec.Updated); err != nil {
		return fmt.Errorf("bolt: put group %s: %w", id, err)
	}
	g.ID, g.Members, g.Created, g.Updated = rec.ID, rec.Members, rec.Created, rec.Updated
	return nil
}

// groupKeys lists g's entries in the unique indexes (see indexKey).
func groupKeys(g *store.Group) []indexKey {
	keys := []indexKey{{"name", bucketGroupNames, groupNameKey(g.IdP, g.DisplayName), store.ErrGroupNameTaken}}
	if g.ExternalID != "" {
		keys = append(keys, indexKey{"externalId", bucketGroupExternalIDs, pair(g.IdP, g.ExternalID), store.ErrExternalIDTaken})
	}
	return keys
}

// joins reports whether m is in after (sorted) and not in before (sorted).
func joins(m string, before, after []string) bool {
	_, in := slices.BinarySearch(after, m)
	_, was := slices.BinarySearch(before, m)
	return in && !was
}

// syncMembers brings the member index and the members' Groups in line
// with a group whose member list is now after (sorted), for the users a
// change touched (store.MembersTouched: those who joined or left, on a
// rename every member).
func (t *tx) syncMembers(groupID, name string, after, touched []string, when time.Time) error {
	ug := t.bucket(bucketUserGroups)
	for _, uid := range touched {
		was := t.scimNames(uid)
		k := pair(uid, groupID)
		if _, member := slices.BinarySearch(after, uid); member {
			if err := ug.Put(k, []byte(name)); err != nil {
				return fmt.Errorf("member index: %w", err)
			}
		} else if err := ug.Delete(k); err != nil {
			return fmt.Errorf("member index: %w", err)
		}
		if err := t.refreshGroups(uid, was, t.scimNames(uid), when); err != nil {
			return err
		}
	}
	return nil
}

// refreshGroups rewrites a user's Groups after their SCIM group names went
// from was to now (store.User.RegroupSCIM).
func (t *tx) refreshGroups(userID string, was, now map[string]bool, when time.Time) error {
	u, err := t.getUser(userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !u.RegroupSCIM(was, now, when) {
		return nil
	}
	data, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode user %s: %w", userID, err)
	}
	// Only Groups and Updated changed, and no index covers them.
	if err := t.bucket(bucketUsers).Put([]byte(userID), data); err != nil {
		return fmt.Errorf("update groups of user %s: %w", userID, err)
	}
	return nil
}

func (t *tx) DeleteGroup(id string) error {
	if err := t.mustWrite("delete group"); err != nil {
		return err
	}
	g, err := t.getGroup(id)
	if err != nil {
		return fmt.Errorf("bolt: delete group %s: %w", id, err)
	}
	if err := t.syncMembers(id, g.DisplayName, nil, g.Members, time.Now()); err != nil {
		return fmt.Errorf("bolt: delete group %s: %w", id, err)
	}
	if err := t.moveKeys(id, groupKeys(g), nil); err != nil {
		return fmt.Errorf("bolt: delete group %s: %w", id, err)
	}
	if err := t.bucket(bucketIdPGroups).Delete(pair(g.IdP, id)); err != nil {
		return fmt.Errorf("bolt: delete group %s: idp index: %w", id, err)
	}
	if err := t.addCount(countGroups, g.IdP, -1); err != nil {
		return fmt.Errorf("bolt: delete group %s: count: %w", id, err)
	}
	if err := t.bucket(bucketGroups).Delete([]byte(id)); err != nil {
		return fmt.Errorf("bolt: delete group %s: %w", id, err)
	}
	return nil
}

// leaveAllGroups removes a user who is being deleted from every group's
// member list and from the member index. Their own Groups need no update.
// Each group's Updated moves (NextStamp): its member list is part of its
// SCIM representation, whose meta.version is Updated, so a client's
// If-None-Match must not get 304 for the old list, nor a stale If-Match
// pass.
func (t *tx) leaveAllGroups(userID string) error {
	refs, err := t.GroupsOfUser(userID)
	if err != nil {
		return err
	}
	now := time.Now()
	ug := t.bucket(bucketUserGroups)
	for _, ref := range refs {
		g, err := t.getGroup(ref.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("leave group %s: %w", ref.ID, err)
		}
		if g != nil {
			if i, ok := slices.BinarySearch(g.Members, userID); ok {
				g.Members = slices.Delete(g.Members, i, i+1)
				g.Updated = store.NextStamp(g.Updated, now)
				data, err := encodeGroup(g)
				if err != nil {
					return fmt.Errorf("encode group %s: %w", g.ID, err)
				}
				if err := t.bucket(bucketGroups).Put([]byte(g.ID), data); err != nil {
					return fmt.Errorf("leave group %s: %w", g.ID, err)
				}
			}
		}
		if err := ug.Delete(pair(userID, ref.ID)); err != nil {
			return fmt.Errorf("leave group %s: %w", ref.ID, err)
		}
	}
	return nil
}

// ---- tombstones ----

func (t *tx) Tombstone(idp, subject string) (*store.Tombstone, error) {
	v := t.bucket(bucketTombstones).Get(pair(idp, subject))
	if v == nil || subject == "" {
		return nil, fmt.Errorf("bolt: tombstone in %s: %w", idp, store.ErrNotFound)
	}
	ts := new(store.Tombstone)
	if err := json.Unmarshal(v, ts); err != nil {
		return nil, fmt.Errorf("bolt: decode tombstone in %s: %w", idp, err)
	}
	return ts, nil
}

func (t *tx) PutTombstone(ts *store.Tombstone) error {
	if err := t.mustWrite("put tombstone"); err != nil {
		return err
	}
	if ts == nil || ts.IdP == "" || ts.Subject == "" {
		return errors.New("bolt: put tombstone: idp and subject are required")
	}
	rec := *ts
	if rec.Deleted.IsZero() {
		rec.Deleted = time.Now()
	}
	for _, c := range []struct{ what, v string }{{"tombstone idp", rec.IdP}, {"tombstone subject", rec.Subject}} {
		if err := store.CheckKey(c.what, c.v); err != nil {
			return fmt.Errorf("bolt: put tombstone: %w", err)
		}
	}
	data, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("bolt: encode tombstone: %w", err)
	}
	b := t.bucket(bucketTombstones)
	k := pair(rec.IdP, rec.Subject)
	if b.Get(k) == nil {
		if err := t.addCount(countTombstones, "", 1); err != nil {
			return fmt.Errorf("bolt: put tombstone in %s: count: %w", rec.IdP, err)
		}
	}
	if err := b.Put(k, data); err != nil {
		return fmt.Errorf("bolt: put tombstone in %s: %w", rec.IdP, err)
	}
	return nil
}

func (t *tx) DeleteTombstone(idp, subject string) error {
	if err := t.mustWrite("delete tombstone"); err != nil {
		return err
	}
	b := t.bucket(bucketTombstones)
	k := pair(idp, subject)
	if b.Get(k) == nil {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return fmt.Errorf("bolt: delete tombstone in %s: %w", idp, err)
	}
	if err := t.addCount(countTombstones, "", -1); err != nil {
		return fmt.Errorf("bolt: delete tombstone in %s: count: %w", idp, err)
	}
	return nil
}

// ForEachTombstone visits tombstones in (IdP, subject) order. Keys are
// pair(idp, subject), which sorts by the IdP's length first; so it lists
// the IdPs (skipping from one to the next with Seek) and then walks each
// IdP's keys in the IdPs' order.
func (t *tx) ForEachTombstone(fn func(*store.Tombstone) error) error {
	c := t.bucket(bucketTombstones).Cursor()
	var idps []string
	for k, _ := c.First(); k != nil; {
		idp, _, ok := unpair(k)
		if !ok {
			return fmt.Errorf("bolt: tombstone key %q is not an (IdP, subject) pair", k)
		}
		idps = append(idps, idp)
		next := pair(idp, "")
		// The first key past every key of idp: its prefix, plus one.
		k, _ = c.Seek(append(next, 0xff))
		for k != nil && bytes.HasPrefix(k, next) {
			k, _ = c.Next()
		}
	}
	slices.Sort(idps)
	for _, idp := range idps {
		prefix := pair(idp, "")
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			ts := new(store.Tombstone)
			if err := json.Unmarshal(v, ts); err != nil {
				return fmt.Errorf("bolt: decode tombstone: %w", err)
			}
			if err := fn(ts); err != nil {
				return err
			}
		}
	}
	return nil
}

// ForEachGroup visits groups in ID order after the given ID.
func (t *tx) ForEachGroup(after string, fn func(*store.Group) error) error {
	c := t.bucket(bucketGroups).Cursor()
	k, v := c.Seek([]byte(after))
	if k != nil && after != "" && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil; k, v = c.Next() {
		g, err := decodeGroup(v)
		if err != nil {
			return fmt.Errorf("bolt: decode group %s: %w", k, err)
		}
		if err := fn(g); err != nil {
			return err
		}
	}
	return nil
}
