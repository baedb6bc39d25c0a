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
	g, err := scanGroup(t.q.QueryRow(ctx, groupSelect+cond+t.lockFor("g"), args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(what)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, t.fail(err))
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
	return forEachPage(func(last *store.Group) ([]*store.Group, error) {
		if last != nil {
			after = last.ID
		}
		page, err := t.groupsWhere("WHERE g.id > $1 ORDER BY g.id LIMIT $2", after, pageSize)
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
	for _, f := range []struct{ what, v string }{{"display name", g.DisplayName}, {"external id", g.ExternalID}} {
		if store.HasControl(f.v) {
			return fail(fmt.Errorf("%s has a control character: %w", f.what, store.ErrInvalidValue))
		}
	}
	nameKey := store.FoldName(g.DisplayName)
	for _, c := range []struct{ what, v string }{
		{"id", g.ID}, {"idp", g.IdP}, {"display name", g.DisplayName}, {"folded display name", nameKey}, {"external id", g.ExternalID},
	} {
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
	if len(members) > 0 {
		var found []string
		err := t.rows("SELECT id FROM sso_users WHERE id = ANY($1) ORDER BY id", []any{members}, func(r pgx.Rows) error {
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
		for _, m := range members {
			if _, ok := slices.BinarySearch(found, m); !ok {
				return fail(fmt.Errorf("member %s: %w", m, store.ErrNotFound))
			}
		}
	}

	id := g.ID
	var old *store.Group
	var err error
	if id == "" {
		if id, err = newID(); err != nil {
			return err
		}
	} else if old, err = t.Group(id); err != nil && !errors.Is(err, store.ErrNotFound) {
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
	if old != nil {
		before = old.Members
	}
	renamed := old != nil && old.DisplayName != rec.DisplayName
	err = t.syncMembers(before, members, renamed, rec.Updated, func() error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO sso_groups (id, idp, display_name, name_key, external_id, data) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET idp = EXCLUDED.idp, display_name = EXCLUDED.display_name,
				name_key = EXCLUDED.name_key, external_id = EXCLUDED.external_id, data = EXCLUDED.data`,
			id, rec.IdP, rec.DisplayName, nameKey, nullIfEmpty(rec.ExternalID), string(data))
		b.Queue("DELETE FROM sso_group_members WHERE group_id = $1 AND NOT (user_id = ANY(coalesce($2::text[], '{}')))", id, members)
		b.Queue(`INSERT INTO sso_group_members (group_id, user_id) SELECT $1, m FROM unnest($2::text[]) AS m
			ON CONFLICT DO NOTHING`, id, members)
		return t.batch(b)
	})
	if err != nil {
		return fail(err)
	}
	g.ID, g.Members, g.Created, g.Updated = rec.ID, members, rec.Created, rec.Updated
	return nil
}

// syncMembers runs change, which moves a group's member list from before
// to after (both sorted) or renames it, and rewrites the Groups of every
// user it touched (store.MembersTouched, store.User.RegroupSCIM).
func (t *tx) syncMembers(before, after []string, renamed bool, when time.Time, change func() error) error {
	touched := store.MembersTouched(before, after, renamed)
	if len(touched) == 0 {
		return change()
	}
	was, err := t.scimNames(touched)
	if err != nil {
		return err
	}
	if err := change(); err != nil {
		return err
	}
	now, err := t.scimNames(touched)
	if err != nil {
		return err
	}
	var ids, datas []string
	err = t.rows("SELECT id, data FROM sso_users WHERE id = ANY($1) ORDER BY id FOR UPDATE", []any{touched}, func(r pgx.Rows) error {
		var id string
		var raw []byte
		if err := r.Scan(&id, &raw); err != nil {
			return err
		}
		u, err := decodeUser(raw)
		if err != nil {
			return err
		}
		if !u.RegroupSCIM(was[id], now[id], when) {
			return nil
		}
		data, err := json.Marshal(u)
		if err != nil {
			return fmt.Errorf("encode user %s: %w", id, err)
		}
		ids, datas = append(ids, id), append(datas, string(data))
		return nil
	})
	if err != nil {
		return fmt.Errorf("member groups: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	// Only Groups and Updated changed, and no key column covers them.
	_, err = t.exec(`UPDATE sso_users u SET data = n.data FROM unnest($1::text[], $2::json[]) AS n(id, data) WHERE u.id = n.id`, ids, datas)
	if err != nil {
		return fmt.Errorf("update member groups: %w", err)
	}
	return nil
}

// scimNames returns, per user, the display names of the groups the user is
// a member of.
func (t *tx) scimNames(userIDs []string) (map[string]map[string]bool, error) {
	out := make(map[string]map[string]bool, len(userIDs))
	err := t.rows(`SELECT m.user_id, g.display_name FROM sso_group_members m JOIN sso_groups g ON g.id = m.group_id
		WHERE m.user_id = ANY($1)`, []any{userIDs}, func(r pgx.Rows) error {
		var uid, name string
		if err := r.Scan(&uid, &name); err != nil {
			return err
		}
		if out[uid] == nil {
			out[uid] = map[string]bool{}
		}
		out[uid][name] = true
		return nil
	})
	return out, err
}

func (t *tx) DeleteGroup(id string) error {
	if err := t.mustWrite("delete group"); err != nil {
		return err
	}
	g, err := t.Group(id)
	if err != nil {
		return fmt.Errorf("postgres: delete group %s: %w", id, err)
	}
	err = t.syncMembers(g.Members, nil, false, time.Now(), func() error {
		_, err := t.exec("DELETE FROM sso_groups WHERE id = $1", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete group %s: %w", id, err)
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
