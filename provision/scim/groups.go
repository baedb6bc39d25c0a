package scim

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

func (h *Handler) groupOps() ops {
	return ops{
		kind: "Group", list: h.listGroups, get: h.getGroup, create: h.createGroup,
		replace: h.replaceGroup, patch: h.patchGroup, remove: h.deleteGroup,
	}
}

func (h *Handler) loadGroup(tx store.Tx, id string) (*store.Group, error) {
	g, err := tx.Group(id)
	if errors.Is(err, store.ErrNotFound) || err == nil && g.IdP != h.cfg.IdP {
		return nil, notFound("Group", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read group: %w", err)
	}
	return g, nil
}

func (h *Handler) listGroups(r *http.Request) (any, error) {
	q, err := parseListQuery(h.groups, r)
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	err = h.store.View(r.Context(), func(tx store.Tx) error {
		var groups []*store.Group
		total := 0
		if q.filter == nil {
			var err error
			if groups, total, err = tx.ListGroups(h.cfg.IdP, q.startIndex, q.count); err != nil {
				return err
			}
		} else {
			ids, ok, err := candidates(q.filter, h.groupLookup(tx))
			if err != nil {
				return err
			}
			if !ok {
				return notIndexed("Group")
			}
			var all []*store.Group
			for _, id := range ids {
				g, err := tx.Group(id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if g.IdP == h.cfg.IdP && matches(scope{rt: h.groups}, q.filter, h.groupOut(r, g)) {
					all = append(all, g)
				}
			}
			total = len(all)
			groups = pageOf(all, q.startIndex, q.count)
		}
		resources := make([]any, 0, len(groups))
		for _, g := range groups {
			resources = append(resources, project(h.groups, h.groupOut(r, g), q.attributes, q.excluded))
		}
		resp = listResponse(total, q.startIndex, resources)
		return nil
	})
	return resp, err
}

func (h *Handler) getGroup(r *http.Request, id string) (any, error) {
	var g *store.Group
	err := h.store.View(r.Context(), func(tx store.Tx) error {
		var err error
		g, err = h.loadGroup(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	return project(h.groups, h.groupOut(r, g), q.Get("attributes"), q.Get("excludedAttributes")), nil
}

// maxLoggedMembers bounds the member IDs one log line names.
const maxLoggedMembers = 20

// groupWrite is what one group transaction did.
type groupWrite struct {
	group    *store.Group
	touched  []string // users whose Groups changed: their cached sessions go
	skipped  []string // member IDs that are not users of this IdP
	changed  bool
	renamed  bool
	added    int
	removed  int
	noChange bool
}

// resolveMembers keeps the member IDs that are users of this IdP. The
// others are skipped, not refused: a directory sends memberships of users
// it failed to provision (or that another app owns), and refusing the
// whole request would stall every other change in it. known members (the
// group's current ones, which the store keeps valid) are not read again,
// so adding one member to a large group reads one user.
func (h *Handler) resolveMembers(tx store.Tx, ids, known []string) (kept, skipped []string, err error) {
	for _, id := range ids {
		if _, ok := slices.BinarySearch(known, id); ok {
			kept = append(kept, id)
			continue
		}
		u, err := tx.User(id)
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && !h.inScope(u):
			skipped = append(skipped, id)
		case err != nil:
			return nil, nil, fmt.Errorf("read member: %w", err)
		default:
			kept = append(kept, id)
		}
	}
	return kept, skipped, nil
}

// saveGroup resolves the members, writes the group and audits it. old is
// nil on create.
func (h *Handler) saveGroup(tx store.Tx, old, g *store.Group, res *groupWrite) error {
	now := h.cfg.Now()
	var before []string
	if old != nil {
		before = old.Members
	}
	var err error
	if g.Members, res.skipped, err = h.resolveMembers(tx, g.Members, before); err != nil {
		return err
	}
	slices.Sort(g.Members)
	g.Members = slices.Compact(g.Members)
	if old != nil {
		res.renamed = old.DisplayName != g.DisplayName
		if !res.renamed && old.ExternalID == g.ExternalID && slices.Equal(before, g.Members) {
			res.group, res.noChange = old, true
			return nil
		}
	} else {
		g.ID, g.Created = "", now
		if _, err := tx.GroupByName(h.cfg.IdP, g.DisplayName); err == nil {
			return errorf(http.StatusConflict, "uniqueness", "displayName %q is already taken", g.DisplayName)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	g.IdP, g.Updated = h.cfg.IdP, now
	if old != nil {
		g.Updated = store.NextStamp(old.Updated, now)
	}
	if err := tx.PutGroup(g); err != nil {
		return storeConflict(err)
	}
	for _, id := range g.Members {
		if _, was := slices.BinarySearch(before, id); !was {
			res.added++
			res.touched = append(res.touched, id)
		} else if res.renamed {
			res.touched = append(res.touched, id)
		}
	}
	for _, id := range before {
		if _, still := slices.BinarySearch(g.Members, id); !still {
			res.removed++
			res.touched = append(res.touched, id)
		}
	}
	res.group, res.changed = g, true
	typ := store.EventGroupUpdated
	if old == nil {
		typ = store.EventGroupCreated
	}
	detail := map[string]string{"source": store.SourceSCIM, "group_id": g.ID,
		"members_added": fmt.Sprint(res.added), "members_removed": fmt.Sprint(res.removed)}
	if res.renamed {
		detail["renamed"] = "true"
	}
	if len(res.skipped) > 0 {
		detail["members_skipped"] = fmt.Sprint(len(res.skipped))
	}
	if err := tx.Audit(store.Event{Time: now, Type: typ, IdP: h.cfg.IdP, Subject: g.ExternalID, Detail: detail}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// afterGroupWrite drops the cached sessions of users whose groups changed,
// so that the next request carries the new groups header, and logs.
func (h *Handler) afterGroupWrite(res *groupWrite, what string) {
	h.forgetUsers(res.touched)
	if len(res.skipped) > 0 {
		// The directory was answered 204 (refusing would have blocked the
		// other members' changes), so this line is where the admin learns
		// which IDs it sent: the first maxLoggedMembers of them, and how
		// many there were, so that a PUT of 50,000 unknown members stays
		// one line of bounded size.
		h.log.Warn("scim group members skipped: not users of this IdP", zap.String("group_id", res.group.ID),
			zap.Int("skipped", len(res.skipped)), zap.Strings("member_ids", res.skipped[:min(len(res.skipped), maxLoggedMembers)]))
	}
	if res.changed {
		h.log.Info(what, zap.String("group_id", res.group.ID), zap.Int("members_added", res.added),
			zap.Int("members_removed", res.removed), zap.Bool("renamed", res.renamed))
	}
}

func (h *Handler) createGroup(r *http.Request, body map[string]any) (map[string]any, string, error) {
	normalize(h.groups, body)
	in, err := h.groupFromDoc(body, nil)
	if err != nil {
		return nil, "", err
	}
	var res groupWrite
	err = h.store.Update(r.Context(), func(tx store.Tx) error {
		res = groupWrite{}
		g := *in
		g.Members = slices.Clone(in.Members)
		return h.saveGroup(tx, nil, &g, &res)
	})
	if err != nil {
		return nil, "", err
	}
	h.afterGroupWrite(&res, "scim group created")
	return h.groupOut(r, res.group), res.group.ID, nil
}

func (h *Handler) replaceGroup(r *http.Request, id string, body map[string]any) (any, error) {
	normalize(h.groups, body)
	res, err := h.writeGroup(r, id, func(old *store.Group) (*store.Group, error) {
		return h.groupFromDoc(body, old)
	})
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	return project(h.groups, h.groupOut(r, res.group), q.Get("attributes"), q.Get("excludedAttributes")), nil
}

// patchGroup answers 204 No Content, as Okta and Entra expect: a group's
// representation can hold thousands of members, and neither reads it.
func (h *Handler) patchGroup(r *http.Request, id string, ops []patchOp) (any, error) {
	_, err := h.writeGroup(r, id, func(old *store.Group) (*store.Group, error) {
		doc := h.groupDoc(old)
		if err := applyPatch(h.groups, doc, ops); err != nil {
			return nil, err
		}
		return h.groupFromDoc(doc, old)
	})
	return nil, err
}

func (h *Handler) writeGroup(r *http.Request, id string, change func(*store.Group) (*store.Group, error)) (*groupWrite, error) {
	var res groupWrite
	err := h.store.Update(r.Context(), func(tx store.Tx) error {
		res = groupWrite{}
		old, err := h.loadGroup(tx, id)
		if err != nil {
			return err
		}
		g, err := change(old)
		if err != nil {
			return err
		}
		g.ID, g.Created = old.ID, old.Created
		return h.saveGroup(tx, old, g, &res)
	})
	if err != nil {
		return nil, err
	}
	h.afterGroupWrite(&res, "scim group updated")
	return &res, nil
}

func (h *Handler) deleteGroup(r *http.Request, id string) error {
	now := h.cfg.Now()
	var members []string
	err := h.store.Update(r.Context(), func(tx store.Tx) error {
		g, err := h.loadGroup(tx, id)
		if err != nil {
			return err
		}
		members = g.Members
		if err := tx.DeleteGroup(id); err != nil {
			return err
		}
		return tx.Audit(store.Event{Time: now, Type: store.EventGroupDeleted, IdP: h.cfg.IdP, Subject: g.ExternalID,
			Detail: map[string]string{"source": store.SourceSCIM, "group_id": id, "members": fmt.Sprint(len(members))}})
	})
	if err != nil {
		return err
	}
	h.forgetUsers(members)
	h.log.Info("scim group deleted", zap.String("group_id", id), zap.Int("members", len(members)))
	return nil
}

// forgetUsers drops the cached sessions of users whose groups changed in a
// transaction that has committed.
func (h *Handler) forgetUsers(ids []string) {
	var c account.Change
	c.ForgetUsers(ids)
	h.acc.Committed(&c)
}
