package scim

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

func (h *Handler) groupOps() ops {
	return ops{
		kind: "Group", rt: h.groups, list: h.listGroups, get: h.getGroup, create: h.createGroup,
		replace: h.replaceGroup, patch: h.patchGroup, remove: h.deleteGroup,
	}
}

// loadGroup reads a group of this IdP (loadOwn).
func (h *Handler) loadGroup(tx store.Tx, id string) (*store.Group, error) {
	return loadOwn("Group", tx.Group, h.groupInScope, id)
}

func (h *Handler) listGroups(r *http.Request) (any, error) {
	q, err := parseListQuery(h.groups, r)
	if err != nil {
		return nil, err
	}
	members := wantsMembers(h.groups, q.attributes, q.excluded)
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
			// Each candidate's document is built once, for the filter
			// and the answer, with its members only when either uses
			// them: Entra looks a group up by displayName, its members
			// excluded, and a group of 50,000 members built them twice
			// (56 MB) to answer 359 bytes.
			var all []any
			withMembers := members || mentionsMembers(q.filter)
			err := eachCandidate("Group", q.filter, h.groupLookup(tx), tx.Group, h.groupInScope, func(g *store.Group) error {
				if d := h.groupView(r, g, withMembers); matches(scope{rt: h.groups}, q.filter, d) {
					all = append(all, d)
				}
				return nil
			})
			if err != nil {
				return err
			}
			resp = listResponse(len(all), q.startIndex, projectAll(h.groups, pageOf(all, q.startIndex, q.count), q))
			return nil
		}
		docs := make([]any, 0, len(groups))
		for _, g := range groups {
			docs = append(docs, h.groupView(r, g, members))
		}
		resp = listResponse(total, q.startIndex, projectAll(h.groups, docs, q))
		return nil
	})
	return resp, err
}

// projectAll applies the query's attributes and excludedAttributes to
// each document.
func projectAll(rt *resourceType, docs []any, q listQuery) []any {
	for i, d := range docs {
		docs[i] = project(rt, d.(map[string]any), q.attributes, q.excluded)
	}
	return docs
}

// groupView is the group's document for an answer; without its members
// when the answer does not show them (wantsMembers), since building them
// costs about 600 bytes per member.
func (h *Handler) groupView(r *http.Request, g *store.Group, members bool) map[string]any {
	if !members && len(g.Members) > 0 {
		bare := *g
		bare.Members = nil
		g = &bare
	}
	return h.groupOut(r, g)
}

// wantsMembers reports whether an answer shaped by these attributes and
// excludedAttributes parameters (RFC 7644 3.9; project) shows members.
func wantsMembers(rt *resourceType, attributes, excluded string) bool {
	if attributes != "" {
		return slices.ContainsFunc(paths(rt, attributes), isMembers)
	}
	return !slices.ContainsFunc(paths(rt, excluded), func(p fpath) bool { return isMembers(p) && p.sub == "" })
}

func isMembers(p fpath) bool { return p.urn == "" && strings.EqualFold(p.attr, "members") }

// mentionsMembers reports whether a filter reads members; one that does
// not matches a group's document without them as it does the whole one.
func mentionsMembers(e expr) bool {
	switch e := e.(type) {
	case *logicExpr:
		return mentionsMembers(e.l) || mentionsMembers(e.r)
	case *notExpr:
		return mentionsMembers(e.x)
	case *cmpExpr:
		return isMembers(e.path)
	}
	return true
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
	return h.groupAnswer(r, g), nil
}

// groupAnswer is the group's document for an answer, with its members
// when the request's attributes and excludedAttributes show them (resource
// shapes it by them).
func (h *Handler) groupAnswer(r *http.Request, g *store.Group) map[string]any {
	q := r.URL.Query()
	return h.groupView(r, g, wantsMembers(h.groups, q.Get("attributes"), q.Get("excludedAttributes")))
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
// group's current ones, which the store keeps valid) are not looked up
// again, so adding one member to a large group looks up one user. ids and
// known are sorted.
//
// The added members are looked up with UsersOfIdP, which locks no row, not
// with User, which does in PostgreSQL: PutGroup locks every member the
// change touches in ID order, and a lock taken here on an added member
// would come before the locks on lower IDs it removes, the opposite order
// to another group's change moving the same two users the other way, and
// the two would deadlock.
func (h *Handler) resolveMembers(tx store.Tx, ids, known []string) (kept, skipped []string, err error) {
	added := slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
		_, ok := slices.BinarySearch(known, id)
		return ok
	})
	found, err := tx.UsersOfIdP(h.cfg.IdP, added)
	if err != nil {
		return nil, nil, fmt.Errorf("read members: %w", err)
	}
	kept = make([]string, 0, len(ids))
	for _, id := range ids {
		_, isKnown := slices.BinarySearch(known, id)
		_, isFound := slices.BinarySearch(found, id)
		if isKnown || isFound {
			kept = append(kept, id)
		} else {
			skipped = append(skipped, id)
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
	slices.Sort(g.Members)
	g.Members = slices.Compact(g.Members)
	var err error
	if g.Members, res.skipped, err = h.resolveMembers(tx, g.Members, before); err != nil {
		return err
	}
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
	res.touched = store.MembersTouched(before, g.Members, res.renamed)
	joined, left := joinedAndLeft(before, g.Members)
	res.added, res.removed = len(joined), len(left)
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
	if err := h.auditMembers(tx, now, g.ID, groupJoined, joined); err != nil {
		return err
	}
	return h.auditMembers(tx, now, g.ID, groupLeft, left)
}

// group_change values of auditMembers' events.
const (
	groupJoined = "joined"
	groupLeft   = "left"
)

// auditMembers writes, in the group write's transaction, one user.updated
// event for each user who joined or left (change) the group: a membership
// is a privilege, and the group's own event holds only counts, so without
// these "audit --user" would not show when a person was given or lost
// one. The detail is that of a sign-in that changed the groups (fields,
// provision.FieldGroups), with the group and the change.
func (h *Handler) auditMembers(tx store.Tx, now time.Time, groupID, change string, ids []string) error {
	for _, id := range ids {
		ev := store.Event{Time: now, Type: store.EventUserUpdated, IdP: h.cfg.IdP, UserID: id, Reason: account.BySCIM,
			Detail: map[string]string{"fields": provision.FieldGroups, "group_id": groupID, "group_change": change}}
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("audit member %s: %w", id, err)
		}
	}
	return nil
}

// joinedAndLeft returns the members who joined and who left between two
// sorted member lists, walking them side by side.
func joinedAndLeft(before, after []string) (joined, left []string) {
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || i < len(before) && before[i] < after[j]:
			left = append(left, before[i])
			i++
		case i == len(before) || after[j] < before[i]:
			joined = append(joined, after[j])
			j++
		default:
			i++
			j++
		}
	}
	return joined, left
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
	return h.groupAnswer(r, res.group), nil
}

// patchGroup answers 204 No Content, as Okta and Entra expect: a group's
// representation can hold thousands of members, and neither reads it.
func (h *Handler) patchGroup(r *http.Request, id string, ops []patchOp) (any, error) {
	if edits, ok := memberEdits(h.groups, ops); ok {
		_, err := h.writeGroup(r, id, func(old *store.Group) (*store.Group, error) {
			// The document without members checks the rest as the
			// general path would (a name stored before a rule that now
			// refuses it).
			bare := *old
			bare.Members = nil
			g, err := h.groupFromDoc(h.groupDoc(&bare), old)
			if err != nil {
				return nil, err
			}
			g.Members = applyMemberEdits(old.Members, edits)
			return g, nil
		})
		return nil, err
	}
	_, err := h.writeGroup(r, id, func(old *store.Group) (*store.Group, error) {
		doc := h.groupDoc(old)
		if err := applyPatch(h.groups, doc, ops); err != nil {
			return nil, err
		}
		return h.groupFromDoc(doc, old)
	})
	return nil, err
}

// memberEdit is one membership change of a PATCH: IDs added or removed,
// or the members replaced by IDs (none: all removed).
type memberEdit struct {
	op  string // "add", "remove", "replace"
	ids []string
}

// memberEdits reads a PATCH that only changes members, in the shapes
// directories send (Entra, Okta, PingOne): add members [...], remove
// members[value eq "id"], remove members with a value list (or none: all
// of them), replace members [...]. Such a PATCH is applied to the
// group's sorted member IDs (applyMemberEdits): the general path builds a
// document holding a map for every member and patches that, 56 MB for a
// group of 50,000, inside the write transaction sign-ins wait for
// (docs/operations.md, "A million users, over time"). The result is the
// one the general path gives; anything it would refuse, or treat
// otherwise than as a set of IDs, is not read here (ok false) and goes
// to it: another attribute, a filter other than value eq, a member not an
// object with one string value, an added ID that is empty or has white
// space at an end (the general path compares it untrimmed, then trims).
func memberEdits(rt *resourceType, ops []patchOp) ([]memberEdit, bool) {
	out := make([]memberEdit, 0, len(ops))
	for _, op := range ops {
		if strings.TrimSpace(op.path) == "" {
			return nil, false
		}
		p, err := parsePatchPath(rt, op.path)
		if err != nil || !isMembers(p) || p.sub != "" {
			return nil, false
		}
		e := memberEdit{op: op.op}
		switch {
		case p.filter != nil:
			vr, ok := asValueRemoval(rt, op)
			if !ok {
				return nil, false
			}
			e.ids = []string{vr.want}
		case op.op == "remove" && op.value == nil:
			e.op = "replace" // all of them go
		case op.op != "remove" && !op.hasValue:
			return nil, false
		default:
			var ok bool
			if e.ids, ok = memberIDs(op.value, op.op != "remove"); !ok {
				return nil, false
			}
		}
		out = append(out, e)
	}
	return out, true
}

// memberIDs reads the IDs of a members value: a list of member objects,
// or one. added asks for the IDs the general path would store as sent.
func memberIDs(v any, added bool) ([]string, bool) {
	var list []any
	switch v := v.(type) {
	case nil:
	case []any:
		list = v
	case map[string]any:
		list = []any{v}
	default:
		return nil, false
	}
	ids := make([]string, 0, len(list))
	for _, el := range list {
		m, ok := el.(map[string]any)
		if !ok {
			return nil, false
		}
		raw, ok := m["value"]
		if !ok {
			// Another spelling, when there is exactly one (normalize
			// would pick one of several at random).
			n := 0
			for k, x := range m {
				if strings.EqualFold(k, "value") {
					raw, n = x, n+1
				}
			}
			if n != 1 {
				return nil, false
			}
		}
		id, ok := raw.(string)
		if !ok || added && (id == "" || strings.TrimSpace(id) != id) {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// applyMemberEdits applies the edits, in order, to a sorted member list,
// and returns the members (unsorted; saveGroup sorts them).
func applyMemberEdits(members []string, edits []memberEdit) []string {
	base := members
	added, removed := map[string]bool{}, map[string]bool{}
	in := func(id string) bool { _, ok := slices.BinarySearch(base, id); return ok }
	for _, e := range edits {
		switch e.op {
		case "replace":
			base = slices.Compact(slices.Sorted(slices.Values(e.ids)))
			clear(added)
			clear(removed)
		case "add":
			for _, id := range e.ids {
				delete(removed, id)
				if !in(id) {
					added[id] = true
				}
			}
		case "remove":
			for _, id := range e.ids {
				delete(added, id)
				if in(id) {
					removed[id] = true
				}
			}
		}
	}
	out := make([]string, 0, len(base)+len(added))
	for _, id := range base {
		if !removed[id] {
			out = append(out, id)
		}
	}
	for id := range added {
		out = append(out, id)
	}
	return out
}

func (h *Handler) writeGroup(r *http.Request, id string, change func(*store.Group) (*store.Group, error)) (*groupWrite, error) {
	var res groupWrite
	err := h.store.Update(r.Context(), func(tx store.Tx) error {
		res = groupWrite{}
		old, err := h.loadGroup(tx, id)
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, version(old.Updated)); err != nil {
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
		if err := checkIfMatch(r, version(g.Updated)); err != nil {
			return err
		}
		members = g.Members
		if err := tx.DeleteGroup(id); err != nil {
			return err
		}
		err = tx.Audit(store.Event{Time: now, Type: store.EventGroupDeleted, IdP: h.cfg.IdP, Subject: g.ExternalID,
			Detail: map[string]string{"source": store.SourceSCIM, "group_id": id, "members": fmt.Sprint(len(members))}})
		if err != nil {
			return err
		}
		// Its members lost it as if each had been removed.
		return h.auditMembers(tx, now, id, groupLeft, members)
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
