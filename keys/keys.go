// Package keys rotates the keys the store keeps for the gateway's own use
// (`caddy sso keys rotate`, POST /sso/keys/rotate): the flow cookies' key,
// the key that seals the sessions' IdP tokens, and the signing keys of the
// identity JWT for upstreams. After a backup leaked (a backup holds every
// key), rotating replaces them without deleting the store, and without
// failing the sign-ins in progress or the tokens sealed before
// (docs/operations.md, "Rotating the store's keys"). The SAML SP keys roll
// by their own procedure (sp_cert), not here. It knows nothing of Caddy.
package keys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

// Kind is a key a rotation may replace.
type Kind string

// The kinds of key, as --only and only= name them.
const (
	Flow        Kind = "flow"         // flow-cookie-key
	Tokens      Kind = "tokens"       // session-tokens-key
	UpstreamJWT Kind = "upstream-jwt" // upstream-jwt-es256/...
)

// Kinds are every kind, in the order a rotation reports them.
func Kinds() []Kind { return []Kind{Flow, Tokens, UpstreamJWT} }

// ParseKinds reads --only values (each a kind or a comma list of them,
// repeats allowed); none means every kind.
func ParseKinds(values []string) ([]Kind, error) {
	var kinds []Kind
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			k := Kind(strings.TrimSpace(part))
			if !slices.Contains(Kinds(), k) {
				return nil, fmt.Errorf("unknown key %q (known: flow, tokens, upstream-jwt)", part)
			}
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	if len(kinds) == 0 {
		return Kinds(), nil
	}
	slices.SortFunc(kinds, func(a, b Kind) int { return slices.Index(Kinds(), a) - slices.Index(Kinds(), b) })
	return kinds, nil
}

// Options say what to rotate and who asks.
type Options struct {
	Only []Kind // nil: every kind
	// By, Via and Remote go into the audit event: who asked
	// (account.ByAdmin), how ("admin_api", "offline") and from where.
	By, Via, Remote string
	Now             func() time.Time // nil: time.Now
	// Reseal tunes the re-seal of the sessions' tokens.
	Reseal session.ResealOptions
	// Committed, when set, is told the report so far once the store
	// transaction of Rotate (or Finish) has committed, before the re-seal:
	// from then on the keys are rotated whatever becomes of the re-seal,
	// which the admin API streams its progress after (docs/operations.md,
	// "Rotating the store's keys").
	Committed func(Report)
}

// Report is what a rotation, or its finish, did.
type Report struct {
	// Rotated are the keys replaced by this run (none when it only
	// finished an earlier rotation's re-seal).
	Rotated []Kind `json:"rotated"`
	// ResealResumed: the re-seal of an earlier rotation of the tokens key
	// was unfinished (interrupted); this run finished it and rotated
	// nothing anew. Run the command again to rotate.
	ResealResumed bool `json:"reseal_resumed,omitempty"`
	// Tokens is what the re-seal did, when it ran.
	Tokens *session.ResealStats `json:"tokens,omitempty"`
	// UpstreamJWT is what the rotation of the identity JWT's keys did.
	UpstreamJWT *upstreamjwt.Rotated `json:"upstream_jwt,omitempty"`
	// FlowPreviousKept: the flow cookies' key before this rotation still
	// opens the cookies it sealed, until Finish (or the next rotation),
	// to run once FinishAfter has passed: every running instance seals
	// with the new key within idp.FlowKeyRecheckInterval, and a cookie
	// sealed before lives idp.DefaultLoginTimeout.
	FlowPreviousKept bool      `json:"flow_previous_kept,omitempty"`
	FinishAfter      time.Time `json:"finish_after,omitzero"`
	// FlowPreviousDeleted: Finish deleted it.
	FlowPreviousDeleted bool `json:"flow_previous_deleted,omitempty"`
}

// The audit event's "step" detail.
const (
	StepRotate = "rotate"
	StepFinish = "finish"
)

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) committed(rep *Report) {
	if o.Committed != nil {
		o.Committed(*rep)
	}
}

func (o Options) audit(tx store.Tx, step string, kinds []Kind) error {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	ev := store.Event{Time: o.now(), Type: account.EventStoreKeysRotated, Reason: o.By,
		Detail: map[string]string{"step": step, "keys": strings.Join(names, ","), "via": o.Via}}
	if o.Remote != "" {
		ev.Detail["remote"] = o.Remote
	}
	return tx.Audit(ev)
}

// ErrResealUnfinished is in the chain of Rotate's and Finish's error when
// the re-seal of the sessions' tokens stopped part-way: the keys were
// rotated, and running the same command again finishes it.
var ErrResealUnfinished = errors.New("the re-seal of the sessions' tokens is unfinished; run the command again to finish it")

// Rotate replaces the keys of opt.Only (every kind when empty) in one
// store transaction, with its audit event (store.keys_rotated, step
// rotate), then seals every session's tokens again under the new tokens
// key and deletes the one before. The transaction takes session.LockKeys
// first, so that rotations and finishes at once take turns, each reading
// the keys the one before wrote. Each key is replaced so that nothing in
// use fails meanwhile:
//
//   - flow: the current key becomes flow-cookie-key/previous (the one kept
//     from an earlier rotation goes), which still opens cookies, and a
//     fresh one seals, on every running instance within
//     idp.FlowKeyRecheckInterval (gateway.FlowKeys), without a reload: a
//     sign-in begun before the rotation completes after it. Finish
//     deletes the previous key, once no cookie it sealed is alive.
//   - tokens: session.RotateTokensKey, then session.Reseal.
//   - upstream-jwt: upstreamjwt.Rotate: every key retired at once (a token a
//     leaked key signed stops verifying), fresh current and next keys.
//
// When the tokens are to be rotated while an earlier rotation's re-seal is
// unfinished, it only finishes that (Report.ResealResumed): that rotation
// replaced its keys already, in its one transaction.
func Rotate(ctx context.Context, db store.Store, opt Options) (*Report, error) {
	kinds := opt.Only
	if len(kinds) == 0 {
		kinds = Kinds()
	}
	rep := &Report{}
	now := opt.now()
	err := db.Update(ctx, func(tx store.Tx) error {
		*rep = Report{Rotated: []Kind{}}
		if err := session.LockKeys(tx); err != nil {
			return err
		}
		if slices.Contains(kinds, Tokens) {
			pending, err := session.ResealPending(tx)
			if err != nil {
				return err
			}
			if pending {
				rep.ResealResumed = true
				return nil
			}
		}
		for _, k := range kinds {
			switch k {
			case Flow:
				kept, err := rotateFlow(tx)
				if err != nil {
					return fmt.Errorf("flow-cookie-key: %w", err)
				}
				if rep.FlowPreviousKept = kept; kept {
					// An instance may seal with the previous key until it
					// next reads the keys; its cookies live the login timeout.
					rep.FinishAfter = now.Add(idp.FlowKeyRecheckInterval + idp.DefaultLoginTimeout)
				}
			case Tokens:
				if _, err := session.RotateTokensKey(tx); err != nil {
					return fmt.Errorf("session-tokens-key: %w", err)
				}
			case UpstreamJWT:
				r, err := upstreamjwt.Rotate(tx, now)
				if err != nil {
					return fmt.Errorf("upstream-jwt keys: %w", err)
				}
				rep.UpstreamJWT = &r
			}
		}
		rep.Rotated = slices.Clone(kinds)
		return opt.audit(tx, StepRotate, kinds)
	})
	if err != nil {
		return nil, fmt.Errorf("rotating the keys: %w", err)
	}
	opt.committed(rep)
	if slices.Contains(kinds, Tokens) {
		if err := reseal(ctx, db, opt, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// rotateFlow moves the flow cookies' key to its previous name (over the
// one kept from an earlier rotation) and stores a fresh one; it reports
// whether there was one to keep.
func rotateFlow(tx store.Tx) (bool, error) {
	const prev = idp.FlowCookieKeySecret + idp.PreviousKeySuffix
	cur, err := tx.LoadOrStoreSecret(idp.FlowCookieKeySecret, nil)
	if errors.Is(err, store.ErrNotFound) {
		_, err = tx.Secret(idp.FlowCookieKeySecret, 32) // none yet: its first
		return false, err
	}
	if err != nil {
		return false, err
	}
	if err := tx.DeleteSecret(prev); err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if _, err := tx.LoadOrStoreSecret(prev, cur); err != nil {
		return false, err
	}
	if err := tx.DeleteSecret(idp.FlowCookieKeySecret); err != nil {
		return false, err
	}
	_, err = tx.Secret(idp.FlowCookieKeySecret, 32)
	return err == nil, err
}

func reseal(ctx context.Context, db store.Store, opt Options, rep *Report) error {
	stats, err := session.Reseal(ctx, db, opt.Reseal)
	rep.Tokens = &stats
	if err != nil {
		return fmt.Errorf("%w: %w", ErrResealUnfinished, err)
	}
	return nil
}

// Finish ends a rotation: it deletes the flow cookies' previous key (a
// cookie only it opens fails from then on, and every running instance
// stops opening them within idp.FlowKeyRecheckInterval; so run it once
// Report.FinishAfter has passed), audited (store.keys_rotated, step
// finish), under session.LockKeys, and finishes a re-seal of the
// sessions' tokens left unfinished.
func Finish(ctx context.Context, db store.Store, opt Options) (*Report, error) {
	rep := &Report{}
	var pending bool
	err := db.Update(ctx, func(tx store.Tx) error {
		rep.FlowPreviousDeleted = false
		if err := session.LockKeys(tx); err != nil {
			return err
		}
		err := tx.DeleteSecret(idp.FlowCookieKeySecret + idp.PreviousKeySuffix)
		switch {
		case err == nil:
			rep.FlowPreviousDeleted = true
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if pending, err = session.ResealPending(tx); err != nil {
			return err
		}
		return opt.audit(tx, StepFinish, []Kind{Flow})
	})
	if err != nil {
		return nil, fmt.Errorf("finishing the rotation: %w", err)
	}
	rep.ResealResumed = pending
	opt.committed(rep)
	if pending {
		if err := reseal(ctx, db, opt, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
