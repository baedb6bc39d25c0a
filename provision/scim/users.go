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

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

func (h *Handler) userOps() ops {
	return ops{
		kind: "User", rt: h.users, list: h.listUsers, get: h.getUser, create: h.createUser,
		replace: h.replaceUser, patch: h.patchUser, remove: h.deleteUser,
	}
}

func (h *Handler) inScope(u *store.User) bool { return u.IdP == h.cfg.IdP }

func (h *Handler) groupInScope(g *store.Group) bool { return g.IdP == h.cfg.IdP }

// readOwn reads a resource with read and says whether it is this IdP's
// (own): a missing one is not, and neither is another IdP's, which must
// look missing so that one IdP's token cannot read or change another's.
func readOwn[T any](read func(string) (*T, error), own func(*T) bool, id string) (*T, bool, error) {
	v, err := read(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, own(v), nil
}

// eachCandidate calls f, in order, with each resource of this IdP (own)
// that the index names as a candidate for filter (kind "User" or
// "Group"); a filter the index cannot narrow is refused (notIndexed).
func eachCandidate[T any](kind string, filter expr, lookup func(attr, value string) ([]string, bool, error),
	read func(string) (*T, error), own func(*T) bool, f func(*T) error) error {
	ids, ok, err := candidates(filter, lookup)
	if err != nil {
		return err
	}
	if !ok {
		return notIndexed(kind)
	}
	for _, id := range ids {
		v, ok, err := readOwn(read, own, id)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := f(v); err != nil {
			return err
		}
	}
	return nil
}

// loadOwn is readOwn for a request that names the resource (kind "User"
// or "Group"): one that is not this IdP's is SCIM's "not found".
func loadOwn[T any](kind string, read func(string) (*T, error), own func(*T) bool, id string) (*T, error) {
	v, ok, err := readOwn(read, own, id)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", strings.ToLower(kind), err)
	}
	if !ok {
		return nil, notFound(kind, id)
	}
	return v, nil
}

// loadUser reads a user of this IdP (loadOwn).
func (h *Handler) loadUser(tx store.Tx, id string) (*store.User, error) {
	return h.loadUserWith(tx.User, id)
}

// loadUserWith is loadUser reading with read: tx.UserForDelete for a
// DELETE, which must lock the user as the delete will from the first read
// (see store.Tx.UserForDelete).
func (h *Handler) loadUserWith(read func(string) (*store.User, error), id string) (*store.User, error) {
	return loadOwn("User", read, h.inScope, id)
}

func (h *Handler) listUsers(r *http.Request) (any, error) {
	q, err := parseListQuery(h.users, r)
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	err = h.store.View(r.Context(), func(tx store.Tx) error {
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
			// The filter is checked on the rendered resource, which is
			// then the response: each candidate is rendered once.
			var all []map[string]any
			err := eachCandidate("User", q.filter, h.userLookup(tx), tx.User, h.inScope, func(u *store.User) error {
				doc, err := h.userOutTx(tx, r, u)
				if err != nil {
					return err
				}
				if matches(scope{rt: h.users}, q.filter, doc) {
					all = append(all, doc)
				}
				return nil
			})
			if err != nil {
				return err
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
	return h.userOut(tx, r, u, refs)
}

func (h *Handler) getUser(r *http.Request, id string) (any, error) {
	var doc map[string]any
	err := h.store.View(r.Context(), func(tx store.Tx) error {
		u, err := h.loadUser(tx, id)
		if err != nil {
			return err
		}
		doc, err = h.userOutTx(tx, r, u)
		return err
	})
	return doc, err
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

// heldElsewhere is a write refused because a user of another IdP holds
// the userName or email: the store keeps both unique across IdPs, while
// this handler's filters see only its own IdP's users, so the directory's
// matching finds nobody and it would POST, and get 409, on every cycle.
// The 409 tells the directory no more than "another identity provider";
// the admin learns which one, and which user, from the log (report).
type heldElsewhere struct {
	attr      string // "userName", "email"
	holderIdP string
	holderID  string
}

func (e *heldElsewhere) Error() string {
	return fmt.Sprintf("%s held by user %s of identity provider %s", e.attr, e.holderID, e.holderIdP)
}

// scimError is the 409 the directory gets.
func (e *heldElsewhere) scimError() *Error {
	return errorf(http.StatusConflict, "uniqueness",
		"%s is held by a user of another identity provider; an administrator of the gateway must resolve it", e.attr)
}

// putUser is tx.PutUser with the store's uniqueness errors as SCIM's 409,
// telling a value held by another IdP's user (*heldElsewhere) from one
// held by this IdP's. PutUser writes nothing when it refuses, so the
// holder is read in the same transaction, and only then, without a lock
// on their row (UserHolding): the transaction holds u's, and the holder's
// taken after it would be out of the store's order whenever the holder's
// ID is the lower, deadlocking with a group change that holds both.
//
// oldEmail is u's stored email ("" for a new user). An email that changes
// is first looked up as a sign-in looks it up (provision.EmailHolder, also
// without a lock on the holder's row): the store keys its email index on
// one spelling of a mailbox, and another user holding it as
// "ceo@xn--bcher-kva.example" or with the root's trailing dot holds the
// same mailbox, which the routes' `allow user` rules would then let both
// users pass. The 409 is the one the exact spelling gets.
func (h *Handler) putUser(tx store.Tx, u *store.User, oldEmail string) error {
	if u.Email != "" && u.Email != oldEmail {
		holder, err := provision.EmailHolder(tx, u.Email)
		if err != nil {
			return err
		}
		if holder != nil && holder.ID != u.ID {
			return h.heldBy(holder, "email", storeConflict(store.ErrEmailTaken))
		}
	}
	err := tx.PutUser(u)
	var (
		holder *store.User
		attr   string
		rerr   error
	)
	switch {
	case errors.Is(err, store.ErrUserNameTaken):
		attr = "userName"
		holder, rerr = tx.UserHolding(store.KeyUserName, "", u.UserName)
	case errors.Is(err, store.ErrEmailTaken):
		attr = "email"
		holder, rerr = tx.UserHolding(store.KeyEmail, "", u.Email)
	default:
		return storeConflict(err)
	}
	if rerr != nil {
		if errors.Is(rerr, store.ErrNotFound) {
			return storeConflict(err)
		}
		return fmt.Errorf("read the holder of the %s: %w", attr, rerr)
	}
	return h.heldBy(holder, attr, storeConflict(err))
}

// heldBy is the refusal of a value holder holds: a *heldElsewhere when
// holder belongs to another IdP, else same.
func (h *Handler) heldBy(holder *store.User, attr string, same error) error {
	if h.inScope(holder) {
		return same
	}
	return &heldElsewhere{attr: attr, holderIdP: holder.IdP, holderID: holder.ID}
}

// report logs a write refused by heldElsewhere, for the admin (WARN: no
// retry of the directory's can resolve it) with request (what the
// directory wrote), and returns the 409; any other error is returned as it
// is. The value itself is not logged: the holder's ID finds it (caddy sso
// users show).
func (h *Handler) report(err error, request zap.Field) error {
	var he *heldElsewhere
	if !errors.As(err, &he) {
		return err
	}
	h.log.Warn("scim write refused: a user of another identity provider holds the value",
		zap.String("attribute", he.attr), zap.String("holder_idp", he.holderIdP), zap.String("holder_user_id", he.holderID), request)
	return he.scimError()
}

// userWrite is what one write transaction did, for the work after the
// commit and the response. Transactions may run more than once, so each
// run starts from a zero userWrite.
type userWrite struct {
	user    *store.User
	changed []string // profile fields
	adopted bool     // the first SCIM write to a JIT (or admin) user
	profile bool     // the profile was written
	change  account.Change
	doc     map[string]any // the response's user, rendered in the transaction (userOut)
}

// createUser creates the user, or adopts the user of this IdP that holds
// the externalId when SCIM has never written it (JIT or an admin created
// it): Okta matches by userName, so a JIT user whose userName (the email)
// is not the Okta username is found only through its externalId (the
// sign-in subject), and the create is then the directory's first write to
// it, as a PUT would be. A SCIM user holding the externalId is a 409: the
// directory created it and must match it.
func (h *Handler) createUser(r *http.Request, body map[string]any) (map[string]any, string, error) {
	normalize(h.users, body)
	in, err := h.userFromDoc(body, nil, modeCreate)
	if err != nil {
		return nil, "", err
	}
	now := h.cfg.Now()
	var (
		created *store.User
		cleared bool // a tombstone was removed
		res     userWrite
	)
	err = h.store.Update(r.Context(), func(tx store.Tx) error {
		created, cleared, res = nil, false, userWrite{}
		u := *in
		u.ID, u.IdP, u.Source, u.Created, u.Updated = "", h.cfg.IdP, store.SourceSCIM, now, now
		var adoptee *store.User
		externalIDTaken := false
		if u.ExternalID != "" {
			holder, err := tx.UserByExternalID(h.cfg.IdP, u.ExternalID)
			switch {
			case err == nil && holder.Source != store.SourceSCIM:
				adoptee = holder
			case err == nil:
				externalIDTaken = true
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("read user by externalId: %w", err)
			}
		}
		// A userName clash is reported before an externalId one, so that
		// the 409 says which clashed even when both do. The adoptee may
		// hold the userName (the same person); anyone else is another,
		// only checked, so not locked after the adoptee (see putUser).
		if holder, err := tx.UserHolding(store.KeyUserName, "", u.UserName); err == nil && (adoptee == nil || holder.ID != adoptee.ID) {
			return h.heldBy(holder, "userName", errorf(http.StatusConflict, "uniqueness", "userName %q is already taken", u.UserName))
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read user by userName: %w", err)
		}
		if externalIDTaken {
			return errorf(http.StatusConflict, "uniqueness", "externalId %q is already taken", u.ExternalID)
		}
		if adoptee != nil {
			// As a PUT would: the first SCIM write, which makes the user
			// SCIM's (saveUser audits adopted_from); active only when
			// sent, so that adopting a deactivated user does not quietly
			// reactivate them.
			return h.rewrite(tx, r, adoptee, h.replacing(body), now, &res)
		}
		if err := h.putUser(tx, &u, ""); err != nil {
			return err
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
				cleared = true
				ev.Detail["tombstone_cleared"] = "true"
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		created = &u
		res.doc, err = h.userOut(tx, r, &u, nil)
		return err
	})
	if err != nil {
		return nil, "", h.report(err, zap.String("external_id", in.ExternalID))
	}
	if created == nil {
		// Adopted: answered as the create it stands for (201 with the
		// user's id), the user as it now is.
		h.acc.Committed(&res.change)
		h.log.Info("scim user adopted by create", zap.String("user_id", res.user.ID), zap.String("external_id", res.user.ExternalID),
			zap.Strings("fields", res.changed))
		return res.doc, res.user.ID, nil
	}
	h.log.Info("scim user created", zap.String("user_id", created.ID), zap.String("external_id", created.ExternalID),
		zap.Bool("active", created.Active), zap.Bool("tombstone_cleared", cleared))
	return res.doc, created.ID, nil
}

// replacing is the change of a PUT, or of a create that adopts a user:
// the document replaces the user, active only when it sends it.
func (h *Handler) replacing(body map[string]any) func(old *store.User) (*store.User, bool, error) {
	return func(old *store.User) (*store.User, bool, error) {
		u, err := h.userFromDoc(body, old, modeReplace)
		return u, body["active"] != nil, err
	}
}

func (h *Handler) replaceUser(r *http.Request, id string, body map[string]any) (any, error) {
	normalize(h.users, body)
	return h.writeUser(r, id, h.replacing(body))
}

func (h *Handler) patchUser(r *http.Request, id string, ops []patchOp) (any, error) {
	return h.writeUser(r, id, func(old *store.User) (*store.User, bool, error) {
		doc, err := h.userDoc(old)
		if err != nil {
			return nil, false, err
		}
		// Without active in the document, what the operations set is what
		// the client sent: an operation that does not name active leaves
		// the user's state (and a pending user's approval) as it is.
		delete(doc, "active")
		if err := applyPatch(h.users, doc, ops); err != nil {
			return nil, false, err
		}
		u, err := h.userFromDoc(doc, old, modePatch)
		return u, doc["active"] != nil, err
	})
}

// rewrite builds old's new record with change (which also says whether
// the request set active) and saves it in tx when anything differs, with
// the user as the answer to r shows it.
func (h *Handler) rewrite(tx store.Tx, r *http.Request, old *store.User, change func(old *store.User) (*store.User, bool, error), now time.Time, res *userWrite) error {
	u, activeSent, err := change(old)
	if err != nil {
		return err
	}
	u.ID, u.IdP = old.ID, old.IdP
	if err := h.saveUser(tx, old, u, activeSent, now, res); err != nil {
		return err
	}
	res.doc, err = h.userOutTx(tx, r, res.user)
	return err
}

// writeUser reads the user, builds the new record with change (which also
// says whether the request set active), and saves it when anything
// differs, all in one transaction.
func (h *Handler) writeUser(r *http.Request, id string, change func(old *store.User) (*store.User, bool, error)) (any, error) {
	now := h.cfg.Now()
	var res userWrite
	err := h.store.Update(r.Context(), func(tx store.Tx) error {
		res = userWrite{}
		old, err := h.loadUser(tx, id)
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, version(old.Updated)); err != nil {
			return err
		}
		return h.rewrite(tx, r, old, change, now, &res)
	})
	if err != nil {
		return nil, h.report(err, zap.String("user_id", id))
	}
	h.acc.Committed(&res.change)
	if res.profile {
		h.log.Info("scim user updated", zap.String("user_id", res.user.ID), zap.Strings("fields", res.changed), zap.Bool("adopted", res.adopted))
	}
	return res.doc, nil
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
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	return out
}

// saveUser writes u's profile over old and audits what changed. The first
// SCIM write to a JIT user takes the profile over (Source scim): from then
// on logins no longer change it (their groups still follow the token with
// update force: a source of their own beside SCIM's, package provision).
// When the request set active, the user is
// then activated or deactivated by the rules every caller shares (package
// account): deactivation ends the user's sessions in this transaction, and
// active=true also approves a pending user.
func (h *Handler) saveUser(tx store.Tx, old, u *store.User, activeSent bool, now time.Time, res *userWrite) error {
	wantActive := u.Active
	u.Active, u.Pending = old.Active, old.Pending
	if provision.CanonEmail(u.Email) != provision.CanonEmail(old.Email) {
		// A sign-in vouched for the old address, not for this one: a
		// directory of one IdP must not make the user linkable from
		// another (link_by_email) by writing an address of its choosing.
		u.EmailVerified = false
	}
	res.changed = diffUser(old, u)
	res.adopted = old.Source != store.SourceSCIM
	res.user = old
	if len(res.changed) > 0 || res.adopted {
		u.Source, u.Updated = store.SourceSCIM, store.NextStamp(old.Updated, now)
		if err := h.putUser(tx, u, old.Email); err != nil {
			return err
		}
		res.user, res.profile = u, true
		ev := store.Event{Time: now, Type: store.EventUserUpdated, IdP: h.cfg.IdP, UserID: u.ID, Subject: u.ExternalID,
			Reason: account.BySCIM, Detail: map[string]string{}}
		if len(res.changed) > 0 {
			ev.Detail["fields"] = strings.Join(res.changed, ",")
		}
		if res.adopted {
			ev.Detail["adopted_from"] = cmpOr(old.Source, "unknown")
		}
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		// The next request must carry the new profile.
		res.change.ForgetUser(u.ID)
	}
	if !activeSent {
		return nil
	}
	op := h.acc.DeactivateTx
	if wantActive {
		op = h.acc.ActivateTx
	}
	a, err := op(tx, &res.change, u.ID, account.BySCIM)
	if err != nil {
		return err
	}
	if a.Changed {
		res.user = a.User
	}
	return nil
}

// deleteUser deletes the user as every deletion does (account.Delete):
// their sessions end and tombstones keep JIT from bringing them back.
func (h *Handler) deleteUser(r *http.Request, id string) error {
	var c account.Change
	err := h.store.Update(r.Context(), func(tx store.Tx) error {
		c = account.Change{}
		u, err := h.loadUserWith(tx.UserForDelete, id)
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, version(u.Updated)); err != nil {
			return err
		}
		_, err = h.acc.DeleteTx(tx, &c, id, account.BySCIM)
		return err
	})
	if err != nil {
		return err
	}
	h.acc.Committed(&c)
	return nil
}
