package scim

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// RevokeReasonDeactivated is the reason recorded with the session
// revocations a SCIM deactivation causes.
const RevokeReasonDeactivated = "scim.deactivated"

func (h *Handler) userOps() ops {
	return ops{
		kind: "User", list: h.listUsers, get: h.getUser, create: h.createUser,
		replace: h.replaceUser, patch: h.patchUser, remove: h.deleteUser,
	}
}

func (h *Handler) inScope(u *store.User) bool { return u.IdP == h.cfg.IdP }

// loadUser reads a user of this IdP; any other is "not found", so that
// one IdP's token cannot read or change another's users.
func (h *Handler) loadUser(tx store.Tx, id string) (*store.User, error) {
	u, err := tx.User(id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !h.inScope(u) {
		return nil, notFound("User", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	return u, nil
}

func (h *Handler) listUsers(r *http.Request) (any, error) {
	q, err := parseListQuery(h.users, r)
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	err = h.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		var docs []map[string]any // rendered users of the page
		total := 0
		if q.filter == nil {
			users, n, err := tx.ListUsers(h.cfg.IdP, q.startIndex, q.count)
			if err != nil {
				return err
			}
			total = n
			for _, u := range users {
				doc, err := h.userOutTx(tx, r, u)
				if err != nil {
					return err
				}
				docs = append(docs, doc)
			}
		} else {
			ids, ok, err := candidates(q.filter, h.userLookup(tx))
			if err != nil {
				return err
			}
			if !ok {
				return notIndexed("User")
			}
			// The filter is checked on the rendered resource, which is
			// then the response: each candidate is rendered once.
			var all []map[string]any
			for _, id := range ids {
				u, err := tx.User(id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if !h.inScope(u) {
					continue
				}
				doc, err := h.userOutTx(tx, r, u)
				if err != nil {
					return err
				}
				if matches(scope{rt: h.users}, q.filter, doc) {
					all = append(all, doc)
				}
			}
			total = len(all)
			docs = pageOf(all, q.startIndex, q.count)
		}
		resources := make([]any, 0, len(docs))
		for _, doc := range docs {
			resources = append(resources, project(h.users, doc, q.attributes, q.excluded))
		}
		resp = listResponse(total, q.startIndex, resources)
		return nil
	})
	return resp, err
}

func (h *Handler) userOutTx(tx store.Tx, r *http.Request, u *store.User) (map[string]any, error) {
	refs, err := tx.GroupsOfUser(u.ID)
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", u.ID, err)
	}
	return h.userOut(r, u, refs)
}

func (h *Handler) getUser(r *http.Request, id string) (any, error) {
	var doc map[string]any
	err := h.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		u, err := h.loadUser(tx, id)
		if err != nil {
			return err
		}
		doc, err = h.userOutTx(tx, r, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	return project(h.users, doc, q.Get("attributes"), q.Get("excludedAttributes")), nil
}

// storeConflict turns the store's uniqueness errors into SCIM's 409.
func storeConflict(err error) error {
	switch {
	case errors.Is(err, store.ErrUserNameTaken):
		return errorf(http.StatusConflict, "uniqueness", "userName is already taken")
	case errors.Is(err, store.ErrExternalIDTaken):
		return errorf(http.StatusConflict, "uniqueness", "externalId is already taken")
	case errors.Is(err, store.ErrEmailTaken):
		return errorf(http.StatusConflict, "uniqueness", "email address belongs to another user")
	case errors.Is(err, store.ErrGroupNameTaken):
		return errorf(http.StatusConflict, "uniqueness", "displayName is already taken")
	}
	return err
}

// userWrite is what one write transaction did, for the work after the
// commit (sessions, logs) and the response. Transactions may run more
// than once, so each run starts from a zero userWrite.
type userWrite struct {
	user        *store.User
	refs        []store.GroupRef
	changed     []string
	wrote       bool
	adopted     bool
	deactivated bool
	activated   bool
	revoked     int
	cleared     bool // a tombstone was removed
}

func (h *Handler) createUser(r *http.Request, body map[string]any) (map[string]any, string, error) {
	normalize(h.users, body)
	in, err := h.userFromDoc(body, nil, modeCreate)
	if err != nil {
		return nil, "", err
	}
	now := h.cfg.Now()
	var res userWrite
	err = h.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		res = userWrite{}
		u := *in
		u.ID, u.IdP, u.Source, u.Created, u.Updated = "", h.cfg.IdP, store.SourceSCIM, now, now
		// Check the two SCIM keys before writing so that the 409 says
		// which one clashed even when both do.
		if _, err := tx.UserByUserName(u.UserName); err == nil {
			return errorf(http.StatusConflict, "uniqueness", "userName %q is already taken", u.UserName)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if u.ExternalID != "" {
			if _, err := tx.UserByExternalID(h.cfg.IdP, u.ExternalID); err == nil {
				return errorf(http.StatusConflict, "uniqueness", "externalId %q is already taken", u.ExternalID)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if err := tx.PutUser(&u); err != nil {
			return storeConflict(err)
		}
		ev := store.Event{Time: now, Type: store.EventUserCreated, IdP: h.cfg.IdP, UserID: u.ID, Subject: u.ExternalID,
			Detail: map[string]string{"source": store.SourceSCIM}}
		if !u.Active {
			ev.Detail["active"] = "false"
		}
		if u.ExternalID != "" {
			// A new SCIM create is the directory saying this identity is
			// wanted again: JIT may sign it in from now on.
			if _, err := tx.Tombstone(h.cfg.IdP, u.ExternalID); err == nil {
				if err := tx.DeleteTombstone(h.cfg.IdP, u.ExternalID); err != nil {
					return err
				}
				res.cleared = true
				ev.Detail["tombstone_cleared"] = "true"
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		res.user, res.wrote = &u, true
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	h.log.Info("scim user created", zap.String("user_id", res.user.ID), zap.String("external_id", res.user.ExternalID),
		zap.Bool("active", res.user.Active), zap.Bool("tombstone_cleared", res.cleared))
	doc, err := h.userOut(r, res.user, nil)
	return doc, res.user.ID, err
}

func (h *Handler) replaceUser(r *http.Request, id string, body map[string]any) (any, error) {
	normalize(h.users, body)
	return h.writeUser(r, id, func(old *store.User) (*store.User, error) {
		return h.userFromDoc(body, old, modeReplace)
	})
}

func (h *Handler) patchUser(r *http.Request, id string, ops []patchOp) (any, error) {
	return h.writeUser(r, id, func(old *store.User) (*store.User, error) {
		doc, err := h.userDoc(old)
		if err != nil {
			return nil, err
		}
		if err := applyPatch(h.users, doc, ops); err != nil {
			return nil, err
		}
		return h.userFromDoc(doc, old, modePatch)
	})
}

// writeUser reads the user, builds the new record with change, and saves
// it when anything differs, all in one transaction; then it revokes or
// forgets the user's sessions.
func (h *Handler) writeUser(r *http.Request, id string, change func(old *store.User) (*store.User, error)) (any, error) {
	now := h.cfg.Now()
	var res userWrite
	err := h.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		res = userWrite{}
		old, err := h.loadUser(tx, id)
		if err != nil {
			return err
		}
		u, err := change(old)
		if err != nil {
			return err
		}
		u.ID, u.IdP = old.ID, old.IdP
		if err := h.saveUser(tx, old, u, now, &res); err != nil {
			return err
		}
		res.refs, err = tx.GroupsOfUser(u.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := h.afterUserWrite(r, &res); err != nil {
		return nil, err
	}
	doc, err := h.userOut(r, res.user, res.refs)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	return project(h.users, doc, q.Get("attributes"), q.Get("excludedAttributes")), nil
}

// diffUser names the fields that differ, in a fixed order.
func diffUser(a, b *store.User) []string {
	var out []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"user_name", a.UserName == b.UserName},
		{"external_id", a.ExternalID == b.ExternalID},
		{"display_name", a.DisplayName == b.DisplayName},
		{"first_name", a.FirstName == b.FirstName},
		{"last_name", a.LastName == b.LastName},
		{"email", a.Email == b.Email},
		{"emails", slices.Equal(a.Emails, b.Emails)},
		{"attributes", bytes.Equal(a.SCIMAttributes, b.SCIMAttributes)},
		{"active", a.Active == b.Active},
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	return out
}

// saveUser writes u over old and audits what changed. The first SCIM
// write to a JIT user takes the profile over (Source scim): from then on
// logins no longer change it. Deactivation deletes the user's sessions
// in the same transaction, so that no request can get through between the
// two; afterUserWrite also drops them from the cache.
func (h *Handler) saveUser(tx store.Tx, old, u *store.User, now time.Time, res *userWrite) error {
	res.changed = diffUser(old, u)
	res.adopted = old.Source != store.SourceSCIM
	if len(res.changed) == 0 && !res.adopted {
		res.user = old
		return nil
	}
	u.Source, u.Updated = store.SourceSCIM, now
	if err := tx.PutUser(u); err != nil {
		return storeConflict(err)
	}
	res.user, res.wrote = u, true
	res.deactivated = old.Active && !u.Active
	res.activated = !old.Active && u.Active
	event := func(typ string) store.Event {
		return store.Event{Time: now, Type: typ, IdP: h.cfg.IdP, UserID: u.ID, Subject: u.ExternalID,
			Detail: map[string]string{"source": store.SourceSCIM}}
	}
	if fields := slices.DeleteFunc(slices.Clone(res.changed), func(f string) bool { return f == "active" }); len(fields) > 0 || res.adopted {
		ev := event(store.EventUserUpdated)
		if len(fields) > 0 {
			ev.Detail["fields"] = strings.Join(fields, ",")
		}
		if res.adopted {
			ev.Detail["adopted_from"] = cmpOr(old.Source, "unknown")
		}
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	switch {
	case res.deactivated:
		if err := tx.Audit(event(store.EventUserDeactivated)); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		hashes, err := tx.DeleteUserSessions(u.ID)
		if err != nil {
			return fmt.Errorf("revoke sessions: %w", err)
		}
		if res.revoked = len(hashes); res.revoked > 0 {
			ev := event(store.EventSessionRevoked)
			ev.Reason = RevokeReasonDeactivated
			ev.Detail["sessions"] = fmt.Sprint(res.revoked)
			if err := tx.Audit(ev); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
	case res.activated:
		if err := tx.Audit(event(store.EventUserActivated)); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

// afterUserWrite runs after the commit. An inactive user's sessions are
// revoked through the session manager every time, not only on the
// transition: that also empties its cache, catches a session a login
// created between the commit and now, and makes a retried request (after
// a failure here) finish the job. A failure is returned so that the
// client retries; the store already has the user deactivated.
func (h *Handler) afterUserWrite(r *http.Request, res *userWrite) error {
	u := res.user
	if !u.Active {
		n, err := h.cfg.Sessions.RevokeUser(r.Context(), u.ID, RevokeReasonDeactivated)
		if err != nil {
			return fmt.Errorf("revoke sessions of deactivated user %s: %w", u.ID, err)
		}
		res.revoked += n
	} else if res.wrote {
		h.cfg.Sessions.ForgetUser(u.ID)
	}
	if !res.wrote {
		return nil
	}
	fields := []zap.Field{zap.String("user_id", u.ID), zap.Strings("fields", res.changed), zap.Bool("adopted", res.adopted)}
	switch {
	case res.deactivated:
		h.log.Info("scim user deactivated", append(fields, zap.Int("sessions_revoked", res.revoked))...)
	case res.activated:
		h.log.Info("scim user reactivated", fields...)
	default:
		h.log.Info("scim user updated", fields...)
	}
	return nil
}

func (h *Handler) deleteUser(r *http.Request, id string) error {
	now := h.cfg.Now()
	var tombstones int
	err := h.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		tombstones = 0
		u, err := h.loadUser(tx, id)
		if err != nil {
			return err
		}
		// Tombstones on every identity of this IdP the user had, so that
		// JIT does not bring the leaver back at their next sign-in.
		subjects := []string{}
		if u.ExternalID != "" {
			subjects = append(subjects, u.ExternalID)
		}
		for _, l := range u.Links {
			if l.IdP == h.cfg.IdP && !slices.Contains(subjects, l.Subject) {
				subjects = append(subjects, l.Subject)
			}
		}
		for _, s := range subjects {
			if err := tx.PutTombstone(&store.Tombstone{IdP: h.cfg.IdP, Subject: s, UserID: u.ID, Deleted: now}); err != nil {
				return err
			}
		}
		tombstones = len(subjects)
		if err := tx.DeleteUser(u.ID); err != nil {
			return err
		}
		return tx.Audit(store.Event{Time: now, Type: store.EventUserDeleted, IdP: h.cfg.IdP, UserID: u.ID, Subject: u.ExternalID,
			Detail: map[string]string{"source": store.SourceSCIM, "tombstones": fmt.Sprint(tombstones)}})
	})
	if err != nil {
		return err
	}
	// The store dropped the sessions with the user; the cache must follow.
	h.cfg.Sessions.ForgetUser(id)
	h.log.Info("scim user deleted", zap.String("user_id", id), zap.Int("tombstones", tombstones))
	return nil
}
