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
	// (account.ByAdmin), how (account.ViaAdminAPI, account.ViaOffline) and from where.
	By, Via, Remote string
	Now             func() time.Time // nil: time.Now
	// Early lets Finish run before the time the rotation gave
	// (Report.FinishAfter): after a leaked backup, to stop the previous
	// flow key opening cookies at once, at the cost of the sign-ins begun
	// before the rotation.
	Early bool
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
	// Rotated are the keys replaced by this run (none for Finish).
	Rotated []Kind `json:"rotated"`
	// Tokens is what the re-seal did, when it ran: Rotate's one pass,
	// which keeps the previous key, or Finish's, which deletes it
	// (Tokens.PreviousDeleted).
	Tokens *session.ResealStats `json:"tokens,omitempty"`
	// TokensPreviousKept: the tokens key before this rotation stays in the
	// store, opening what it sealed, until Finish: a sign-in or a refresh
	// that read it just before the rotation committed may commit a blob
	// sealed under it after the re-seal (docs/operations.md, "Rotating the
	// store's keys"). A rotation of the tokens key before that Finish is
	// refused (ErrFinishFirst).
	TokensPreviousKept bool `json:"tokens_previous_kept,omitempty"`
	// TokensPreviousFound: Finish found the previous tokens key: it seals
	// again what only that key opens, then deletes it (Tokens says how
	// that went).
	TokensPreviousFound bool `json:"tokens_previous_found,omitempty"`
	// UpstreamJWT is what the rotation of the identity JWT's keys did.
	UpstreamJWT *upstreamjwt.Rotated `json:"upstream_jwt,omitempty"`
	// FlowPreviousKept: the flow cookies' key before this rotation still
	// opens the cookies it sealed, until Finish (or the next rotation).
	FlowPreviousKept bool `json:"flow_previous_kept,omitempty"`
	// FinishAfter, when a previous key is kept, is when to run Finish:
	// every running instance seals with the new flow key within
	// idp.FlowKeyRecheckInterval, a cookie sealed before lives
	// idp.DefaultLoginTimeout, and a transaction that read the tokens key
	// before the rotation has long committed by then.
	FinishAfter time.Time `json:"finish_after,omitzero"`
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
// rotated, the previous tokens key stays and opens what is not sealed
// again yet, and Finish (run again, if it was Finish) finishes it.
var ErrResealUnfinished = errors.New("the re-seal of the sessions' tokens stopped part-way; every session's tokens still open " +
	"(the previous tokens key stays), and 'caddy sso keys finish', at the time the rotation gave, finishes it")

// TimeLayout writes the times a rotation gives (Report.FinishAfter) with
// their zone: the admin API's messages are written in the server's, the
// CLI's in the operator's.
const TimeLayout = time.DateTime + " MST"

// ErrTooEarly is in the chain of Finish's error when it runs before the
// time the rotation gave (Report.FinishAfter), without Options.Early:
// sign-ins begun before the rotation would fail, and an instance that has
// not yet read the new flow key would still seal under the one deleted.
// Nothing is deleted.
var ErrTooEarly = errors.New("too early")

// finishAfterSecret is the row of the secrets table that holds, as RFC
// 3339 text, the time the last rotation that kept a previous key gave for
// its finish; Finish deletes it. It holds no key. A store rotated by an
// earlier release has none, and its finish runs at once.
const finishAfterSecret = "key-rotation-finish-after"

// ErrFinishFirst is in the chain of Rotate's error when the tokens key is
// to be rotated while the rotation before is unfinished: its previous key,
// still needed, would be lost. Nothing is rotated.
var ErrFinishFirst = errors.New("the previous rotation of session-tokens-key is unfinished: " +
	"finish it first (caddy sso keys finish), or use --only to leave tokens out")

// Rotate replaces the keys of opt.Only (every kind when empty) in one
// store transaction, with its audit event (store.keys_rotated, step
// rotate), then seals every session's tokens again under the new tokens
// key, keeping the one before until Finish. The transaction takes
// session.LockKeys first, so that rotations and finishes at once take
// turns, each reading the keys the one before wrote. Each key is replaced so that nothing in
// use fails meanwhile:
//
//   - flow: the current key becomes flow-cookie-key/previous (the one kept
//     from an earlier rotation goes), which still opens cookies, and a
//     fresh one seals, on every running instance within
//     idp.FlowKeyRecheckInterval (gateway.FlowKeys), without a reload: a
//     sign-in begun before the rotation completes after it. Finish
//     deletes the previous key, once no cookie it sealed is alive.
//   - tokens: session.RotateTokensKey, then session.Reseal's one pass,
//     keeping the previous key (KeepPrevious): a sign-in that read it
//     before the commit may seal under it after the pass. Finish re-seals
//     again and deletes it.
//   - upstream-jwt: upstreamjwt.Rotate: every key retired at once (a token a
//     leaked key signed stops verifying), fresh current and next keys.
//
// The tokens key is not rotated again before Finish (ErrFinishFirst,
// nothing rotated): its previous key, which may open blobs sealed across
// the rotation, would be lost.
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
				return ErrFinishFirst
			}
		}
		for _, k := range kinds {
			switch k {
			case Flow:
				kept, err := rotateFlow(tx)
				if err != nil {
					return fmt.Errorf("flow-cookie-key: %w", err)
				}
				rep.FlowPreviousKept = kept
			case Tokens:
				if _, err := session.RotateTokensKey(tx); err != nil {
					return fmt.Errorf("session-tokens-key: %w", err)
				}
				kept, err := session.ResealPending(tx) // none on a store's first key
				if err != nil {
					return fmt.Errorf("session-tokens-key: %w", err)
				}
				rep.TokensPreviousKept = kept
			case UpstreamJWT:
				r, err := upstreamjwt.Rotate(tx, now)
				if err != nil {
					return fmt.Errorf("upstream-jwt keys: %w", err)
				}
				rep.UpstreamJWT = &r
			}
		}
		if rep.FlowPreviousKept || rep.TokensPreviousKept {
			// An instance may seal with the previous flow key until it
			// next reads the keys; its cookies live the login timeout.
			rep.FinishAfter = now.Add(idp.FlowKeyRecheckInterval + idp.DefaultLoginTimeout)
			if err := tx.DeleteSecret(finishAfterSecret); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if _, err := tx.LoadOrStoreSecret(finishAfterSecret, []byte(rep.FinishAfter.UTC().Format(time.RFC3339))); err != nil {
				return err
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
		opt.Reseal.KeepPrevious = true
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

// finishDue refuses a finish before the time the rotation gave, unless
// opt.Early, and deletes that time (the rotation it was for ends here).
func finishDue(tx store.Tx, opt Options) error {
	raw, err := tx.LoadOrStoreSecret(finishAfterSecret, nil)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	after, err := time.Parse(time.RFC3339, string(raw))
	if err != nil {
		return fmt.Errorf("%s: %w", finishAfterSecret, err)
	}
	if now := opt.now(); now.Before(after) && !opt.Early {
		return fmt.Errorf("%w: the rotation gave %s (in %s), when no sign-in begun before it is still in progress; "+
			"finish now only to stop the previous keys at once, failing those sign-ins (--now, or now=true through the admin API)",
			ErrTooEarly, after.Local().Format(TimeLayout), after.Sub(now).Round(time.Second))
	}
	return tx.DeleteSecret(finishAfterSecret)
}

func reseal(ctx context.Context, db store.Store, opt Options, rep *Report) error {
	stats, err := session.Reseal(ctx, db, opt.Reseal)
	rep.Tokens = &stats
	if err != nil {
		return fmt.Errorf("%w: %w", ErrResealUnfinished, err)
	}
	return nil
}

// Finish ends a rotation, once Report.FinishAfter has passed (before it,
// only with Options.Early; otherwise ErrTooEarly): it deletes
// the flow cookies' previous key (a cookie only it opens fails from then
// on, and every running instance stops opening them within
// idp.FlowKeyRecheckInterval), audited (store.keys_rotated, step finish),
// under session.LockKeys; then, when the store holds a previous tokens
// key, it seals again every blob only that key opens (those a sign-in
// sealed across the rotation, long committed by then, and any an
// interrupted re-seal left) and deletes the key (session.Reseal, which
// deletes it only if it is still the key its pass began with).
func Finish(ctx context.Context, db store.Store, opt Options) (*Report, error) {
	rep := &Report{}
	err := db.Update(ctx, func(tx store.Tx) error {
		*rep = Report{}
		if err := session.LockKeys(tx); err != nil {
			return err
		}
		if err := finishDue(tx, opt); err != nil {
			return err
		}
		err := tx.DeleteSecret(idp.FlowCookieKeySecret + idp.PreviousKeySuffix)
		switch {
		case err == nil:
			rep.FlowPreviousDeleted = true
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if rep.TokensPreviousFound, err = session.ResealPending(tx); err != nil {
			return err
		}
		kinds := []Kind{Flow}
		if rep.TokensPreviousFound {
			kinds = append(kinds, Tokens)
		}
		return opt.audit(tx, StepFinish, kinds)
	})
	if err != nil {
		return nil, fmt.Errorf("finishing the rotation: %w", err)
	}
	opt.committed(rep)
	if rep.TokensPreviousFound {
		opt.Reseal.KeepPrevious = false
		if err := reseal(ctx, db, opt, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
