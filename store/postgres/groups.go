package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
)

// ---- groups ----

// groupSelect reads a group with its members (sorted, from the member
// table, which is the only place they are kept).
const groupSelect = `SELECT g.data, (SELECT array_agg(m.user_id ORDER BY m.user_id) FROM sso_group_members m WHERE m.group_id = g.id)
	FROM sso_groups g `

func scanGroup(r pgx.Row) (*store.Group, error) {
	var raw []byte
	var members []string
	if err := r.Scan(&raw, &members); err != nil {
		return nil, err
	}
	g, err := decodeJSON[store.Group]("group")(raw)
	if err != nil {
		return nil, err
	}
	g.Members = members
	return g, nil
}

func (t *tx) groupWhere(what string, key int64, cond string, args ...any) (*store.Group, error) {
	if err := t.lockKeys([]int64{key}); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	if t.failed != nil {
		return nil, t.failed
	}
	ctx, cancel := t.db.bound(t.ctx)
	defer cancel()
	lock := t.lockFor("g")
	g, err := scanGroup(t.q.QueryRow(ctx, groupSelect+cond+lock, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(what)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, t.fail(err))
	}
	if lock != "" {
		// The members again, in a statement after the lock (see
		// lockGroup): the locking statement's subquery holds them as of
		// before a wait for another change's commit (a member's
		// deletion, which locks the group: lockUserGroups), and the
		// caller writes the group back from them.
		if g.Members, err = t.groupMembers(g.ID); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", what, err)
		}
	}
	return g, nil
}

func (t *tx) groupsWhere(cond string, args ...any) ([]*store.Group, error) {
	return collect(t, scanGroup, groupSelect+cond, args...)
}

func (t *tx) Group(id string) (*store.Group, error) {
	what := "group " + id
	if !storable(id) {
		return nil, notFound(what)
	}
	return t.groupWhere(what, 0, "WHERE g.id = $1", id)
}

func (t *tx) GroupByName(idp, displayName string) (*store.Group, error) {
	key := store.FoldName(displayName)
	if displayName == "" || !storable(idp) || !storable(key) {
		return nil, notFound("group by name")
	}
	return t.groupWhere("group by name", t.db.keyLock("group name", idp, key), "WHERE g.idp = $1 AND g.name_key = $2", idp, key)
}

func (t *tx) GroupByExternalID(idp, externalID string) (*store.Group, error) {
	if externalID == "" || !storable(idp) || !storable(externalID) {
		return nil, notFound("group by external id")
	}
	return t.groupWhere("group by external id", t.db.keyLock("group external id", idp, externalID), "WHERE g.idp = $1 AND g.external_id = $2", idp, externalID)
}

func (t *tx) ListGroups(idp string, startIndex, count int) ([]*store.Group, int, error) {
	if !storable(idp) {
		return nil, 0, nil
	}
	var total int
	if err := t.row("SELECT count(*) FROM sso_groups WHERE idp = $1", []any{idp}, &total); err != nil {
		return nil, 0, fmt.Errorf("postgres: list groups of %s: %w", idp, err)
	}
	if count <= 0 {
		return nil, total, nil
	}
	out, err := t.groupsWhere("WHERE g.idp = $1 ORDER BY g.id OFFSET $2 LIMIT $3", idp, max(startIndex, 1)-1, count)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: list groups of %s: %w", idp, err)
	}
	return out, total, nil
}

func (t *tx) ForEachGroup(after string, fn func(*store.Group) error) error {
	after, skip := storableAfter(after)
	return forEachPage(func(last *store.Group) ([]*store.Group, error) {
		cond := "WHERE g.id > $1"
		if last != nil {
			after, skip = last.ID, false
		}
		if skip {
			cond += " AND NOT starts_with(g.id, $1)"
		}
		page, err := t.groupsWhere(cond+" ORDER BY g.id LIMIT $2", after, pageSize)
		if err != nil {
			return nil, fmt.Errorf("postgres: for each group: %w", err)
		}
		return page, nil
	}, fn)
}

func (t *tx) GroupsOfUser(userID string) ([]store.GroupRef, error) {
	if !storable(userID) {
		return nil, nil
	}
	out, err := collect(t, func(r pgx.Row) (store.GroupRef, error) {
		var ref store.GroupRef
		err := r.Scan(&ref.ID, &ref.DisplayName)
		return ref, err
	}, `SELECT g.id, g.display_name FROM sso_group_members m JOIN sso_groups g ON g.id = m.group_id
		WHERE m.user_id = $1 ORDER BY g.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: groups of user %s: %w", userID, err)
	}
	return out, nil
}

func (t *tx) PutGroup(g *store.Group) error {
	if err := t.mustWrite("put group"); err != nil {
		return err
	}
	if g == nil {
		return errors.New("postgres: put group: nil group")
	}
	fail := func(err error) error { return fmt.Errorf("postgres: put group %s: %w", g.ID, err) }
	if strings.TrimSpace(g.DisplayName) == "" {
		return fail(errors.New("display name is required"))
	}
	for _, f := range []struct{ what, v string }{{"display name", g.DisplayName}, {"externalId", g.ExternalID}} {
		if err := store.CheckIndexed(f.what, f.v); err != nil {
			return fail(err)
		}
	}
	nameKey := store.FoldName(g.DisplayName)
	for _, c := range []struct{ what, v string }{{"id", g.ID}, {"idp", g.IdP}} {
		if err := checkKey(c.what, c.v); err != nil {
			return fail(err)
		}
	}
	members := store.NormalMembers(g.Members)
	for _, m := range members {
		if !storable(m) {
			return fail(fmt.Errorf("member %q: %w", m, store.ErrNotFound))
		}
	}
	// In sorted chunks, so the first missing member found is the first
	// of all.
	for chunk := range slices.Chunk(members, memberChunk) {
		found := make([]string, 0, len(chunk))
		err := t.rows("SELECT id FROM sso_users WHERE id = ANY($1) ORDER BY id", []any{chunk}, func(r pgx.Rows) error {
			var id string
			if err := r.Scan(&id); err != nil {
				return err
			}
			found = append(found, id)
			return nil
		})
		if err != nil {
			return fail(err)
		}
		for _, m := range chunk {
			if _, ok := slices.BinarySearch(found, m); ok {
				continue
			}
			if slices.Contains(t.usersSeen, m) {
				// Deleted since this transaction's UsersOfIdP found
				// them: a conflict, not the caller's mistake.
				return t.fail(fail(fmt.Errorf("member %s: %w", m, errMemberDeletedMeanwhile)))
			}
			return fail(fmt.Errorf("member %s: %w", m, store.ErrNotFound))
		}
	}

	id := g.ID
	var old *lockedGroup
	var err error
	if id == "" {
		if id, err = newID(); err != nil {
			return err
		}
	} else if old, err = t.lockGroup(id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fail(err)
	}
	if err := t.lockKeys([]int64{t.db.keyLock("group name", g.IdP, nameKey), t.db.keyLock("group external id", g.IdP, g.ExternalID)}); err != nil {
		return fail(err)
	}
	var nameOwner, extOwner *string
	err = t.row(`SELECT (SELECT id FROM sso_groups WHERE idp = $2 AND name_key = $3 AND id <> $1),
		(SELECT id FROM sso_groups WHERE idp = $2 AND external_id = $4 AND id <> $1)`,
		[]any{id, g.IdP, nameKey, nullIfEmpty(g.ExternalID)}, &nameOwner, &extOwner)
	if err != nil {
		return fail(err)
	}
	if nameOwner != nil {
		return fail(store.ErrGroupNameTaken)
	}
	if extOwner != nil {
		return fail(fmt.Errorf("external id in %s: %w", g.IdP, store.ErrExternalIDTaken))
	}

	rec := *g
	rec.ID = id
	rec.Members = nil // kept in sso_group_members only
	store.FillTimes(&rec.Created, &rec.Updated, time.Now())
	data, err := json.Marshal(&rec)
	if err != nil {
		return fail(fmt.Errorf("encode: %w", err))
	}
	var before []string
	var oldName string
	if old != nil {
		before, oldName = old.members, old.displayName
	}
	err = t.syncMembers(id, oldName, rec.DisplayName, before, members, rec.Updated, func() error {
		_, err := t.exec(`INSERT INTO sso_groups (id, idp, display_name, name_key, external_id, data) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET idp = EXCLUDED.idp, display_name = EXCLUDED.display_name,
				name_key = EXCLUDED.name_key, external_id = EXCLUDED.external_id, data = EXCLUDED.data`,
			id, rec.IdP, rec.DisplayName, nameKey, nullIfEmpty(rec.ExternalID), string(data))
		if err != nil {
			return err
		}
		// The member rows of those who joined are inserted by
		// syncMembers, each once its user is locked.
		return t.deleteMembers(id, store.MembersTouched(before, members, false), members)
	})
	if err != nil {
		return fail(err)
	}
	g.ID, g.Members, g.Created, g.Updated = rec.ID, members, rec.Created, rec.Updated
	return nil
}

// memberChunk is how many users one statement reads, locks or writes for
// a change to a group's members: a SCIM group of 100,000 members takes a
// hundred statements, each well within the statement timeout, where one
// statement for all of them timed out (and each rerun held the locks on
// every member's row until it did).
const memberChunk = 1000

// lockedGroup is what PutGroup and DeleteGroup read of the group they
// change.
type lockedGroup struct {
	displayName string
	members     []string // sorted
}

// lockGroup locks the group's row and then reads its members in a
// statement of its own, whose snapshot, taken after the lock, holds the
// last committed member list (a subquery of the locking statement would
// see the list as of before a wait for a concurrent change's commit, and
// the member rows are written from the difference).
func (t *tx) lockGroup(id string) (*lockedGroup, error) {
	g := new(lockedGroup)
	err := t.row("SELECT display_name FROM sso_groups WHERE id = $1 FOR UPDATE", []any{id}, &g.displayName)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("group " + id)
	}
	if err != nil {
		return nil, err
	}
	if g.members, err = t.groupMembers(id); err != nil {
		return nil, err
	}
	return g, nil
}

// groupMembers reads a group's members (sorted), as of the statement's
// start: after a lock on the group, the last committed list.
func (t *tx) groupMembers(id string) ([]string, error) {
	var members []string
	err := t.rows("SELECT user_id FROM sso_group_members WHERE group_id = $1 ORDER BY user_id", []any{id}, func(r pgx.Rows) error {
		var m string
		if err := r.Scan(&m); err != nil {
			return err
		}
		members = append(members, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return members, nil
}

// deleteMembers deletes the member rows of users, but keeps those of
// keep (both sorted), in chunks.
func (t *tx) deleteMembers(groupID string, users, keep []string) error {
	gone := slices.DeleteFunc(slices.Clone(users), func(u string) bool {
		_, ok := slices.BinarySearch(keep, u)
		return ok
	})
	for chunk := range slices.Chunk(gone, memberChunk) {
		if _, err := t.exec("DELETE FROM sso_group_members WHERE group_id = $1 AND user_id = ANY($2)", groupID, chunk); err != nil {
			return err
		}
	}
	return nil
}

// syncMembers runs change, which moves group groupID's member list from
// before to after (both sorted) and its name from oldName to newName (""
// for a group that did not exist, or no longer does) but for the member
// rows of those who joined, then inserts those rows and rewrites the
// Groups of every user it touched (store.MembersTouched,
// store.User.RegroupSCIM).
//
// The lock order, the one every transaction here keeps: the group's row
// (lockGroup; a deletion takes the user's groups first, lockUserGroups),
// then the users' rows FOR NO KEY UPDATE, memberChunk at a time, in ID
// order, and a user's row before any row that points to it. So each chunk
// of users is locked (lockMembers) before their member rows are inserted:
// an insert takes FOR KEY SHARE on the user (the foreign key), which lets
// another transaction's FOR NO KEY UPDATE through; holding it while
// waiting for that lock, as when the rows of all members were inserted
// first and the users locked after, deadlocks with a transaction that
// read the user and then changes their email, userName or externalId
// (PutUser: an UPDATE of a unique column needs FOR UPDATE, which waits for
// the KEY SHARE). A new session's insert keeps the order too: Write in
// package session reads the user first.
//
// Two such changes cannot deadlock over their members only if neither
// locked one of them earlier in its transaction: a lock on a higher ID
// taken before this one asks for a lower one is out of order. So the
// caller must not read the members with User (which locks the row in an
// Update) before PutGroup; it checks them with UsersOfIdP, which locks
// none (as SCIM's resolveMembers does). Likewise any transaction holding
// one user's row: it checks who holds a value with UserHolding, which
// locks no row, and locks a second user it writes only with LockUsers,
// both in ID order (a sign-in taking another user's email, package
// provision's knownUser).
func (t *tx) syncMembers(groupID, oldName, newName string, before, after []string, when time.Time, change func() error) error {
	touched := store.MembersTouched(before, after, oldName != "" && newName != "" && oldName != newName)
	if err := change(); err != nil {
		return err
	}
	for chunk := range slices.Chunk(touched, memberChunk) {
		if err := t.lockMembers(chunk); err != nil {
			return err
		}
		// The rows of those of the chunk in after: those who joined, and
		// on a rename (every member touched) those who stay, whose rows
		// are there already (ON CONFLICT DO NOTHING inserts none, and so
		// takes no lock). One a concurrent DeleteUser took since PutGroup
		// checked it fails the foreign key, and in the rerun the caller's
		// UsersOfIdP leaves it out, or else PutGroup reports it missing.
		// A member who stays keeps their row meanwhile: a deletion locks
		// the user's groups first (lockUserGroups), and so waits for this
		// change.
		in := slices.DeleteFunc(slices.Clone(chunk), func(id string) bool { _, ok := slices.BinarySearch(after, id); return !ok })
		if len(in) > 0 {
			_, err := t.exec(`INSERT INTO sso_group_members (group_id, user_id) SELECT $1, m FROM unnest($2::text[]) AS m
				ON CONFLICT DO NOTHING`, groupID, in)
			if err != nil {
				return fmt.Errorf("insert members: %w", err)
			}
		}
		if err := t.regroup(chunk, groupID, oldName, newName, before, after, when); err != nil {
			return err
		}
	}
	return nil
}

// lockMembers locks the users ids (sorted, one chunk) FOR NO KEY UPDATE,
// in ID order (see syncMembers), as lockFor: FOR UPDATE would also wait
// for the FOR KEY SHARE locks that another transaction's rows pointing to
// these users hold until it commits (a new session, another group's member
// rows), for as long as that whole transaction runs.
func (t *tx) lockMembers(ids []string) error {
	if _, err := t.exec("SELECT 1 FROM sso_users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", ids); err != nil {
		return fmt.Errorf("lock members: %w", err)
	}
	return nil
}

// regroup rewrites the Groups of those of the users ids (locked by
// lockMembers) whose SCIM group names changed (see syncMembers). A user's
// names were those of their other groups and oldName if they were in
// before; they are those of their other groups and newName if they are in
// after.
//
// The users are read in a statement after the one that locks them, so
// that its snapshot holds what a concurrent change to them (another
// group's) committed while this one waited for the locks. The other
// groups' names are one index lookup per user, so that the cost does not
// depend on the plan the server chose for a member table that was empty
// when the transaction began.
func (t *tx) regroup(ids []string, groupID, oldName, newName string, before, after []string, when time.Time) error {
	in := func(list []string, id string) bool { _, ok := slices.BinarySearch(list, id); return ok }
	var changed, datas []string
	err := t.rows(`SELECT u.id, u.data, ARRAY(SELECT g.display_name FROM sso_group_members m JOIN sso_groups g ON g.id = m.group_id
			WHERE m.user_id = u.id AND m.group_id <> $2)
		FROM sso_users u WHERE u.id = ANY($1)`, []any{ids, groupID}, func(r pgx.Rows) error {
		var id string
		var raw []byte
		var others []string
		if err := r.Scan(&id, &raw, &others); err != nil {
			return err
		}
		u, err := decodeUser(raw)
		if err != nil {
			return err
		}
		was, now := make(map[string]bool, len(others)+1), make(map[string]bool, len(others)+1)
		for _, name := range others {
			was[name], now[name] = true, true
		}
		if in(before, id) {
			was[oldName] = true
		}
		if in(after, id) {
			now[newName] = true
		}
		if !u.RegroupSCIM(was, now, when) {
			return nil
		}
		data, err := json.Marshal(u)
		if err != nil {
			return fmt.Errorf("encode user %s: %w", id, err)
		}
		changed, datas = append(changed, id), append(datas, string(data))
		return nil
	})
	if err != nil {
		return fmt.Errorf("member groups: %w", err)
	}
	if len(changed) == 0 {
		return nil
	}
	// Only Groups and Updated changed, and no key column covers them. The
	// condition on u.id alone makes the server find the users by the
	// primary key, whatever it thinks of the array's size.
	_, err = t.exec(`UPDATE sso_users u SET data = n.data FROM unnest($1::text[], $2::json[]) AS n(id, data)
		WHERE u.id = n.id AND u.id = ANY($1)`, changed, datas)
	if err != nil {
		return fmt.Errorf("update member groups: %w", err)
	}
	return nil
}

func (t *tx) DeleteGroup(id string) error {
	if err := t.mustWrite("delete group"); err != nil {
		return err
	}
	if !storable(id) {
		return fmt.Errorf("postgres: delete group %s: %w", id, notFound("group "+id))
	}
	g, err := t.lockGroup(id)
	if err != nil {
		return fmt.Errorf("postgres: delete group %s: %w", id, err)
	}
	err = t.syncMembers(id, g.displayName, "", g.members, nil, time.Now(), func() error {
		// The member rows first, in chunks, rather than all at once by
		// the foreign key's cascade.
		if err := t.deleteMembers(id, g.members, nil); err != nil {
			return err
		}
		_, err := t.exec("DELETE FROM sso_groups WHERE id = $1", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete group %s: %w", id, err)
	}
	return nil
}

// lockUserGroups locks the groups userID is a member of, in ID order, for
// a transaction that goes on to delete the user (UserForDelete): before
// the user's row, as a group change locks its group before its members'
// rows (syncMembers: the lock order). DeleteUser writes these groups
// (leaveAllGroups); taking them after the user would deadlock with a
// change to one of them that holds the group and waits for the user. It
// returns their IDs, in that order.
func (t *tx) lockUserGroups(userID string) ([]string, error) {
	ids, err := collect(t, func(r pgx.Row) (id string, err error) { return id, r.Scan(&id, new([]byte)) },
		groupsOfMember+" FOR NO KEY UPDATE OF g", userID)
	if err != nil {
		return nil, fmt.Errorf("lock groups of user %s: %w", userID, err)
	}
	return ids, nil
}

// joinedOther reports whether userID is a member of a group not in ids.
func (t *tx) joinedOther(userID string, ids []string) (bool, error) {
	var other bool
	// Not nil, which pgx sends as NULL: <> ALL(NULL) is never true.
	ids = append([]string{}, ids...)
	err := t.row("SELECT EXISTS (SELECT 1 FROM sso_group_members WHERE user_id = $1 AND group_id <> ALL($2::text[]))", []any{userID, ids}, &other)
	if err != nil {
		return false, fmt.Errorf("groups of user %s: %w", userID, err)
	}
	return other, nil
}

// groupsOfMember selects the groups $1 is a member of, in ID order (the
// order their locks are taken in).
const groupsOfMember = `SELECT g.id, g.data FROM sso_groups g
	WHERE g.id IN (SELECT m.group_id FROM sso_group_members m WHERE m.user_id = $1) ORDER BY g.id`

// leaveAllGroups moves the Updated (store.NextStamp) of every group a user
// who is being deleted is a member of, as bolt's does: the member rows go
// by the foreign key's cascade, and the member list is part of a group's
// SCIM representation, whose meta.version is Updated, so a client's
// If-None-Match must not get 304 for the old list, nor a stale If-Match
// pass. The groups are locked in ID order, as lockUserGroups locks them.
func (t *tx) leaveAllGroups(userID string) error {
	now := time.Now()
	var ids, datas []string
	err := t.rows(groupsOfMember+" FOR NO KEY UPDATE OF g", []any{userID}, func(r pgx.Rows) error {
		var id string
		var raw []byte
		if err := r.Scan(&id, &raw); err != nil {
			return err
		}
		g, err := decodeJSON[store.Group]("group")(raw)
		if err != nil {
			return err
		}
		g.Updated = store.NextStamp(g.Updated, now)
		data, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("encode group %s: %w", id, err)
		}
		ids, datas = append(ids, id), append(datas, string(data))
		return nil
	})
	if err != nil {
		return fmt.Errorf("lock groups: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	// Only Updated changed, and no key column covers it.
	_, err = t.exec(`UPDATE sso_groups g SET data = n.data FROM unnest($1::text[], $2::json[]) AS n(id, data)
		WHERE g.id = n.id AND g.id = ANY($1)`, ids, datas)
	if err != nil {
		return fmt.Errorf("stamp groups: %w", err)
	}
	return nil
}

// ---- tombstones ----

func (t *tx) Tombstone(idp, subject string) (*store.Tombstone, error) {
	what := "tombstone in " + idp
	if subject == "" || !storable(idp) || !storable(subject) {
		return nil, notFound(what)
	}
	var raw []byte
	err := t.row("SELECT data FROM sso_tombstones WHERE idp = $1 AND subject = $2", []any{idp, subject}, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(what)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	ts, err := decodeTombstone(raw)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	return ts, nil
}

var decodeTombstone = decodeJSON[store.Tombstone]("tombstone")

func (t *tx) PutTombstone(ts *store.Tombstone) error {
	if err := t.mustWrite("put tombstone"); err != nil {
		return err
	}
	if ts == nil || ts.IdP == "" || ts.Subject == "" {
		return errors.New("postgres: put tombstone: idp and subject are required")
	}
	for _, c := range []struct{ what, v string }{{"idp", ts.IdP}, {"subject", ts.Subject}} {
		if err := checkKey(c.what, c.v); err != nil {
			return fmt.Errorf("postgres: put tombstone: %w", err)
		}
	}
	rec := *ts
	if rec.Deleted.IsZero() {
		rec.Deleted = time.Now()
	}
	data, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("postgres: encode tombstone: %w", err)
	}
	_, err = t.exec(`INSERT INTO sso_tombstones (idp, subject, data) VALUES ($1, $2, $3)
		ON CONFLICT (idp, subject) DO UPDATE SET data = EXCLUDED.data`, rec.IdP, rec.Subject, string(data))
	if err != nil {
		return fmt.Errorf("postgres: put tombstone in %s: %w", rec.IdP, err)
	}
	return nil
}

func (t *tx) DeleteTombstone(idp, subject string) error {
	if err := t.mustWrite("delete tombstone"); err != nil {
		return err
	}
	if !storable(idp) || !storable(subject) {
		return nil
	}
	if _, err := t.exec("DELETE FROM sso_tombstones WHERE idp = $1 AND subject = $2", idp, subject); err != nil {
		return fmt.Errorf("postgres: delete tombstone in %s: %w", idp, err)
	}
	return nil
}

func (t *tx) ForEachTombstone(fn func(*store.Tombstone) error) error {
	return forEachPage(func(last *store.Tombstone) ([]*store.Tombstone, error) {
		var idp, subject string
		if last != nil {
			idp, subject = last.IdP, last.Subject
		}
		page, err := collect(t, scanJSON(decodeTombstone),
			"SELECT data FROM sso_tombstones WHERE (idp, subject) > ($1, $2) ORDER BY idp, subject LIMIT $3",
			idp, subject, pageSize)
		if err != nil {
			return nil, fmt.Errorf("postgres: for each tombstone: %w", err)
		}
		return page, nil
	}, fn)
}
