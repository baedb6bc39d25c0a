package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/store"
)

// ErrNoUpstreamToken is UpstreamTokens' answer for a session without a
// usable access token: it has none (signed in before a route passed
// tokens), or it expired and there is no refresh token to renew it. The
// session itself is still valid; a route that needs the token signs the
// person in again.
var ErrNoUpstreamToken = errors.New("session: no valid access token")

// ReasonGrantRevoked is the audit reason (session.revoked) of a session
// ended because the IdP refused to refresh its tokens (idp.ErrGrantRevoked).
const ReasonGrantRevoked = "grant_revoked"

// refreshRetry spaces out refresh attempts after one failed for a passing
// reason (the IdP unreachable): the tokens in hand serve while they are
// valid, so that an IdP outage does not become a refresh per request.
const refreshRetry = 10 * time.Second

// RefreshFunc asks the identity provider for fresh tokens in exchange for
// t.RefreshToken (idp/oidc's Provider.Refresh). The tokens it returns are
// complete: a refresh that returns no new ID token or refresh token keeps
// t's. An error wrapping idp.ErrGrantRevoked ends the session.
type RefreshFunc func(ctx context.Context, t *Tokens) (*Tokens, error)

// UpstreamTokens are a session's tokens as a route hands them to the
// upstream, each as a one-element header value, built once per token and
// shared: callers must not modify them.
type UpstreamTokens struct {
	Access []string // the access token
	Bearer []string // "Bearer " and the access token, for Authorization
	ID     []string // the ID token
}

// upstream is a session's tokens as last read or refreshed, cached with the
// identity (Identity.upstream) so that requests neither open the sealed
// blob nor touch the store. It goes with the identity: bounded like the
// session cache, and read from the store again (the source of truth, which
// another instance may have refreshed) when the identity is.
type upstream struct {
	values     UpstreamTokens
	tokens     *Tokens
	expiry     int64 // unix nanos; 0: the IdP gave none, and the token is never refreshed
	refreshing bool  // a refresh token is at hand
	// notBefore (unix nanos) holds off the next refresh: after a failed
	// attempt, or when the IdP issues tokens that live no longer than a
	// route's margin, which would otherwise be refreshed on every request.
	notBefore int64
	// failed, when set, is the answer until notBefore: the access token
	// expired and the IdP could not renew it.
	failed error
}

func newUpstream(t *Tokens) *upstream {
	u := &upstream{tokens: t, refreshing: t.RefreshToken != ""}
	if !t.Expiry.IsZero() {
		u.expiry = t.Expiry.UnixNano()
	}
	u.values = UpstreamTokens{Access: []string{t.AccessToken}, Bearer: []string{"Bearer " + t.AccessToken}}
	if t.IDToken != "" {
		u.values.ID = []string{t.IDToken}
	}
	return u
}

// cached returns what the cache answers at now, and whether it answers:
// a failure not yet due for another attempt, or fresh tokens.
func (u *upstream) cached(now int64, margin time.Duration) (*upstream, bool, error) {
	switch {
	case u == nil:
		return nil, false, nil
	case u.failed != nil:
		return nil, now < u.notBefore, u.failed
	}
	return u, u.fresh(now, margin), nil
}

// fresh reports whether the tokens can be passed on at now without a
// refresh: the expiry is unknown; or more than margin away; or the access
// token is valid and either nothing can renew it or notBefore holds the
// refresh off.
func (u *upstream) fresh(now int64, margin time.Duration) bool {
	switch {
	case u.expiry == 0:
		return true
	case now >= u.expiry:
		return false
	case !u.refreshing || now < u.notBefore:
		return true
	}
	return now < u.expiry-int64(margin)
}

// UpstreamTokens returns the tokens of id's session for a route that passes
// them upstream, refreshed through refresh when the access token expires
// within margin. A cached hit costs an atomic load and a comparison.
//
// Refreshes are single-flight per session: concurrent requests wait for
// one refresh and share its result. Before refreshing, the stored tokens
// are read again, since another instance sharing the store may have
// refreshed them already. When the IdP refuses the refresh for good
// (idp.ErrGrantRevoked), the session ends (audited session.revoked,
// ReasonGrantRevoked) and ErrNoSession is returned. ErrNoUpstreamToken
// means there is no valid access token to pass; any other error, that the
// IdP could not renew an expired token.
func (m *Manager) UpstreamTokens(ctx context.Context, id *Identity, margin time.Duration, refresh RefreshFunc) (*UpstreamTokens, error) {
	if u, ok, err := id.upstream.Load().cached(m.now().UnixNano(), margin); ok {
		if err != nil {
			return nil, err
		}
		return &u.values, nil
	}
	// The refresh outlives a request that gives up: its result serves
	// every request waiting for it; the IdP client's timeout bounds it.
	v, err, _ := m.flight.Do(id.SessionHash, func() (any, error) {
		return m.renew(context.WithoutCancel(ctx), id, margin, refresh)
	})
	if err != nil {
		return nil, err
	}
	return &v.(*upstream).values, nil
}

// renew is UpstreamTokens' single flight: the stored tokens, refreshed
// when they must be.
func (m *Manager) renew(ctx context.Context, id *Identity, margin time.Duration, refresh RefreshFunc) (*upstream, error) {
	now := m.now()
	// A flight that ended just before this one began may have renewed them.
	if u, ok, err := id.upstream.Load().cached(now.UnixNano(), margin); ok {
		return u, err
	}
	stored, err := m.Tokens(ctx, id.SessionHash)
	if err != nil {
		return nil, err
	}
	if stored == nil || stored.AccessToken == "" {
		return nil, ErrNoUpstreamToken
	}
	u := newUpstream(stored)
	if u.fresh(now.UnixNano(), margin) {
		id.upstream.Store(u)
		return u, nil
	}
	if !u.refreshing {
		return nil, ErrNoUpstreamToken // expired, and nothing renews it
	}
	renewed, err := refresh(ctx, stored)
	if err != nil {
		return m.refreshFailed(ctx, id, stored, err)
	}
	kept, err := m.swapTokens(ctx, id.SessionHash, stored, renewed)
	if err != nil {
		return nil, err
	}
	u = newUpstream(kept)
	if now := m.now(); kept == renewed && !kept.Expiry.IsZero() && kept.Expiry.Sub(now) <= margin {
		// The IdP's tokens live no longer than the margin: refresh at
		// half their life instead of on every request.
		u.notBefore = now.Add(kept.Expiry.Sub(now) / 2).UnixNano()
		m.logger.Warn("the identity provider issues access tokens that live no longer than the route's token_refresh_margin; refreshing at half their lifetime instead",
			zap.String("idp", id.IdP), zap.Duration("lifetime", kept.Expiry.Sub(now)), zap.Duration("margin", margin))
	}
	id.upstream.Store(u)
	return u, nil
}

// refreshFailed decides what a failed refresh leaves the request with.
func (m *Manager) refreshFailed(ctx context.Context, id *Identity, used *Tokens, cause error) (*upstream, error) {
	now := m.now().UnixNano()
	// Another instance may have refreshed, and rotated the refresh token
	// this one used, since the store was read: its tokens are the
	// session's now.
	if again, err := m.Tokens(ctx, id.SessionHash); err == nil && again != nil && again.RefreshToken != used.RefreshToken {
		if u := newUpstream(again); u.expiry == 0 || now < u.expiry {
			id.upstream.Store(u)
			return u, nil
		}
	}
	if errors.Is(cause, idp.ErrGrantRevoked) {
		m.logger.Info("session ended: the identity provider refused to refresh its tokens",
			zap.String("idp", id.IdP), zap.String("user_id", id.UserID), zap.Error(cause))
		if err := m.End(ctx, id.SessionHash, store.EventSessionRevoked, ReasonGrantRevoked); err != nil {
			return nil, err
		}
		return nil, ErrNoSession
	}
	m.logger.Warn("refreshing a session's tokens failed", zap.String("idp", id.IdP), zap.Error(cause))
	if u := newUpstream(used); now < u.expiry {
		// Still valid: pass it on, and try again later.
		u.notBefore = now + int64(refreshRetry)
		id.upstream.Store(u)
		return u, nil
	}
	// Expired: requests fail until the next attempt is due.
	err := fmt.Errorf("session: refreshing tokens: %w", cause)
	id.upstream.Store(&upstream{failed: err, notBefore: now + int64(refreshRetry)})
	return nil, err
}

// swapTokens stores renewed in place of old, unless the session's stored
// tokens are no longer old (another instance refreshed first): then the
// stored ones are kept and returned, so that every instance goes on with
// the same refresh token. ErrNoSession when the session has ended.
func (m *Manager) swapTokens(ctx context.Context, hash string, old, renewed *Tokens) (*Tokens, error) {
	plain, err := m.zip.tokensPlain(renewed)
	if err != nil {
		return nil, err
	}
	var kept *Tokens
	err = m.store.Update(ctx, func(tx store.Tx) error {
		kept = renewed
		st, err := readSealed(tx, hash)
		if err != nil {
			return err
		}
		cur, err := openTokens(st.key, hash, st.blob)
		if err != nil {
			return err
		}
		if cur != nil && cur.RefreshToken != old.RefreshToken {
			kept = cur
			return nil
		}
		return putSealed(tx, hash, plain)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: storing refreshed tokens: %w", err)
	}
	return kept, nil
}

// End ends the session stored under hash (store.Session.Hash), here and on
// the instances sharing the store, and audits it as eventType with reason.
// A session that has ended already is not an error.
func (m *Manager) End(ctx context.Context, hash, eventType, reason string) error {
	h, ok := parseHash(hash)
	if !ok {
		return ErrNoSession
	}
	m.forget(h)
	ended := false
	err := m.store.Update(ctx, func(tx store.Tx) error {
		ended = false
		s, err := tx.Session(hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.DeleteSession(hash); err != nil {
			return err
		}
		ended = true
		return tx.Audit(store.Event{Type: eventType, IdP: s.IdP, UserID: s.UserID, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("session: end: %w", err)
	}
	if ended {
		m.forget(h) // again: a request may have re-read it before the commit
		m.broadcast(ctx, store.Invalidation{Sessions: []string{hash}})
	}
	return nil
}
