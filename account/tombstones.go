package account

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
)

// Tombstones an administrator can see and lift. A deletion leaves them
// (DeleteTx) and sign-in refuses their identities as deprovisioned
// (docs/scim.md, Deprovisioning); a SCIM create with the deleted user's
// externalId lifts the one at its IdP. Nothing else would: a person the
// directory provisions again under a new externalId (a rehire, a mailbox
// given to someone new), or one back by JIT at an IdP where SCIM was
// turned off, stayed refused at every IdP a following tombstone names.
// Lifting is the administrator's way out, audited like every other
// account operation.

// EventTombstoneLifted records that an administrator lifted a tombstone:
// one event per tombstone, its IdP, Subject and UserID (the deleted user)
// those of the tombstone, its Reason who asked (ByAdmin), its detail how
// many the operation lifted in all ("tombstones") and, for a following
// tombstone, its home's IdP ("home_idp", as login.denied names it).
const EventTombstoneLifted = "user.tombstone_lifted"

// TombstoneQuery selects tombstones. Zero fields do not filter.
type TombstoneQuery struct {
	// UserID is the deleted user's ID (login.denied's deleted_user).
	UserID string
	IdP    string
	// After is the Next of the previous page.
	After string
	// Limit bounds the page (DefaultPageSize when 0, at most MaxPageSize).
	Limit int
}

// TombstoneInfo is a stored tombstone as the admin API shows it.
type TombstoneInfo struct {
	store.Tombstone
	// HomeLifted says, of a following tombstone (Home set), that its home
	// tombstone is gone (a SCIM create lifted it): sign-in no longer heeds
	// it (provision's login.tombstone), and lifting it changes nothing.
	HomeLifted bool `json:"home_lifted,omitempty"`
}

// TombstonesPage is one page of tombstones in (IdP, subject) order; Next,
// when set, is the After of the next page.
type TombstonesPage struct {
	Tombstones []TombstoneInfo `json:"tombstones"`
	Next       string          `json:"next,omitempty"`
}

// LiftResult is what a lift removed.
type LiftResult struct {
	Lifted []store.Tombstone `json:"lifted"`
}

// TombstoneNotFoundError says that no tombstone matched a lift. It
// matches store.ErrNotFound, as NotFoundError does.
type TombstoneNotFoundError struct{ UserID, IdP, Subject string }

func (e *TombstoneNotFoundError) Error() string {
	if e.UserID != "" {
		return fmt.Sprintf("no tombstone of deleted user %q", e.UserID)
	}
	return fmt.Sprintf("no tombstone of subject %q at IdP %q", e.Subject, e.IdP)
}

// Is makes errors.Is(err, store.ErrNotFound) hold.
func (e *TombstoneNotFoundError) Is(target error) bool { return target == store.ErrNotFound }

// tombstoneCursor is the After of a page: the last tombstone's key, as
// base64url JSON, since IdP names and subjects may hold any separator.
func tombstoneCursor(t *store.Tombstone) string {
	b, _ := json.Marshal([2]string{t.IdP, t.Subject}) // two strings always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseTombstoneCursor(after string) (idp, subject string, err error) {
	var key [2]string
	b, err := base64.RawURLEncoding.DecodeString(after)
	if err == nil {
		err = json.Unmarshal(b, &key)
	}
	if err != nil {
		return "", "", fmt.Errorf("%w: tombstones after %q: want the next of a previous page", ErrBadQuery, after)
	}
	return key[0], key[1], nil
}

// ListTombstones returns one page of the tombstones q selects, in (IdP,
// subject) order. The store has no index by deleted user, and
// ForEachTombstone no start key, so each page reads the tombstones before
// it too: there is one per identity of a deleted user, few next to the
// users, and listing them is an administrator's occasional question.
func (s *Service) ListTombstones(ctx context.Context, q TombstoneQuery) (*TombstonesPage, error) {
	var afterIdP, afterSubject string
	if q.After != "" {
		var err error
		if afterIdP, afterSubject, err = parseTombstoneCursor(q.After); err != nil {
			return nil, err
		}
	}
	limit := pageSize(q.Limit, DefaultPageSize)
	page := &TombstonesPage{}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		page.Tombstones, page.Next = []TombstoneInfo{}, ""
		seen := 0
		err := tx.ForEachTombstone(func(t *store.Tombstone) error {
			if seen++; seen%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			// Both backends visit in byte order of (IdP, subject), as
			// Go compares strings (store.Tx.ForEachTombstone).
			if q.After != "" && cmp.Or(cmp.Compare(t.IdP, afterIdP), cmp.Compare(t.Subject, afterSubject)) <= 0 {
				return nil
			}
			if (q.UserID != "" && t.UserID != q.UserID) || (q.IdP != "" && t.IdP != q.IdP) {
				return nil
			}
			if len(page.Tombstones) == limit {
				page.Next = tombstoneCursor(&page.Tombstones[limit-1].Tombstone)
				return errPageFull
			}
			page.Tombstones = append(page.Tombstones, TombstoneInfo{Tombstone: *t})
			return nil
		})
		if err != nil && !errors.Is(err, errPageFull) {
			return err
		}
		for i := range page.Tombstones {
			t := &page.Tombstones[i]
			if t.Home == nil {
				continue
			}
			switch _, err := tx.Tombstone(t.Home.IdP, t.Home.Subject); {
			case errors.Is(err, store.ErrNotFound):
				t.HomeLifted = true
			case err != nil:
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tombstones: %w", err)
	}
	return page, nil
}

// LiftTx removes every tombstone of the deleted user (those at the IdPs
// SCIM manages and those following them), and every other tombstone that
// names one of them as its Home: lifting a home makes its following
// tombstones inert (provision's login.tombstone), and none is left behind
// to come back into force should the same identity be deleted again.
func (s *Service) LiftTx(tx store.Tx, c *Change, deletedUserID, by string) (*LiftResult, error) {
	if deletedUserID == "" {
		return nil, fmt.Errorf("%w: name the deleted user whose tombstones to lift", ErrBadQuery)
	}
	return s.lift(tx, c, by, func(t *store.Tombstone) bool { return t.UserID == deletedUserID },
		&TombstoneNotFoundError{UserID: deletedUserID})
}

// Lift is LiftTx in a transaction of its own.
func (s *Service) Lift(ctx context.Context, deletedUserID, by string) (*LiftResult, error) {
	return inTx(ctx, s, func(tx store.Tx, c *Change) (*LiftResult, error) { return s.LiftTx(tx, c, deletedUserID, by) })
}

// LiftTombstoneTx removes the tombstone of (idp, subject) and those that
// name it as their Home (see LiftTx). Lifting a following tombstone
// alone lets the person in at its IdP while the home one still refuses
// them at the SCIM-managed IdP.
func (s *Service) LiftTombstoneTx(tx store.Tx, c *Change, idp, subject, by string) (*LiftResult, error) {
	if idp == "" || subject == "" {
		return nil, fmt.Errorf("%w: name both the IdP and the subject of the tombstone to lift", ErrBadQuery)
	}
	return s.lift(tx, c, by, func(t *store.Tombstone) bool { return t.IdP == idp && t.Subject == subject },
		&TombstoneNotFoundError{IdP: idp, Subject: subject})
}

// LiftTombstone is LiftTombstoneTx in a transaction of its own.
func (s *Service) LiftTombstone(ctx context.Context, idp, subject, by string) (*LiftResult, error) {
	return inTx(ctx, s, func(tx store.Tx, c *Change) (*LiftResult, error) {
		return s.LiftTombstoneTx(tx, c, idp, subject, by)
	})
}

// lift removes the tombstones match selects and those whose Home is one
// of them, and audits each; none selected is notFound.
func (s *Service) lift(tx store.Tx, c *Change, by string, match func(*store.Tombstone) bool, notFound error) (*LiftResult, error) {
	// Read first, delete after: a backend may not be written while it
	// iterates (bbolt's cursors).
	var chosen, following []store.Tombstone
	err := tx.ForEachTombstone(func(t *store.Tombstone) error {
		switch {
		case match(t):
			chosen = append(chosen, *t)
		case t.Home != nil:
			following = append(following, *t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tombstones: %w", err)
	}
	if len(chosen) == 0 {
		return nil, notFound
	}
	homes := make(map[store.Link]bool, len(chosen))
	for _, t := range chosen {
		homes[store.Link{IdP: t.IdP, Subject: t.Subject}] = true
	}
	lifted := chosen
	for _, t := range following {
		if homes[*t.Home] {
			lifted = append(lifted, t)
		}
	}
	now := s.now()
	n := strconv.Itoa(len(lifted))
	var users []string
	for _, t := range lifted {
		if err := tx.DeleteTombstone(t.IdP, t.Subject); err != nil {
			return nil, fmt.Errorf("lift tombstone in %s: %w", t.IdP, err)
		}
		ev := store.Event{Time: now, Type: EventTombstoneLifted, IdP: t.IdP, UserID: t.UserID, Subject: t.Subject,
			Reason: by, Detail: map[string]string{"tombstones": n}}
		if t.Home != nil {
			ev.Detail["home_idp"] = t.Home.IdP
		}
		if err := s.audit(tx, ev); err != nil {
			return nil, err
		}
		if !slices.Contains(users, t.UserID) {
			users = append(users, t.UserID)
		}
	}
	// The subjects are in the audit trail; the log says whose, and how many.
	c.log("tombstones lifted", zap.Strings("deleted_users", users), zap.String("by", by), zap.Int("tombstones", len(lifted)))
	return &LiftResult{Lifted: lifted}, nil
}
