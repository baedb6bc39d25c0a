package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
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

// ErrRefreshFailed is UpstreamTokens' answer when the session's access
// token has expired and the identity provider could not renew it (the
// cause wrapped): a gateway answers 502, the IdP's failure. Any other
// error of UpstreamTokens is the store's, which a gateway answers as every
// store failure (503, try again), not as the IdP's.
var ErrRefreshFailed = errors.New("session: refreshing tokens")

// RefreshFailedError is the ErrRefreshFailed of a refresh that failed,
// with when the session asks the IdP again: RefreshRetry after the
// attempt, or, with instances sharing the store, not before the claim of
// the failed attempt ends (Config.RefreshRaceWindow), which is later. A
// gateway gives it as Retry-After: a client that obeys an earlier one
// would meet the same failure, the IdP not asked.
type RefreshFailedError struct {
	// RetryAt is on the Manager's clock (New's now: time.Now unless a
	// test sets it).
	RetryAt time.Time
	Err     error // the IdP's failure
}

func (e *RefreshFailedError) Error() string   { return ErrRefreshFailed.Error() + ": " + e.Err.Error() }
func (e *RefreshFailedError) Unwrap() []error { return []error{ErrRefreshFailed, e.Err} }

// ReasonGrantRevoked is the audit reason (session.revoked) of a session
// ended because the IdP refused to refresh its tokens (idp.ErrGrantRevoked).
const ReasonGrantRevoked = "grant_revoked"

// RefreshRetry spaces out refresh attempts after one failed for a passing
// reason (the IdP unreachable): the tokens in hand serve while they are
// valid, so that an IdP outage does not become a refresh per request. A
// gateway answering ErrRefreshFailed gives it as Retry-After.
const RefreshRetry = 10 * time.Second

// A refresh the IdP refuses with invalid_grant may have lost a race rather
// than met a revoked grant: the refresh single flight is per instance, and
// another instance sharing the store may have refreshed the same session
// with the same refresh token a moment earlier, which an IdP that rotates
// refresh tokens (Okta, Auth0, PingOne, Keycloak) retired on the spot,
// while its answer is still on the wire or its store write not yet
// committed. So before ending the session, refreshFailed re-reads the
// stored tokens, first at once, then after refreshLandFirstPoll, doubling
// up to refreshLandMaxPoll, for Config.RefreshRaceWindow in all: a refresh
// token other than the one this refresh used is that instance's, and the
// session lives on with its tokens. A grant revoked for good thus ends its
// session that much later; requests of the session meanwhile are passed
// its access token while it is valid, rather than wait (awaitRotation).
const (
	refreshLandFirstPoll = 50 * time.Millisecond
	refreshLandMaxPoll   = time.Second
)

// refreshClaimKind is the single-use ID kind (store.Tx.Consume) under
// which an instance sharing the store claims a session's refresh before it
// asks the IdP (claimRefresh). Without the claim, two instances finding
// the access token due at once both present the same refresh token, and
// an IdP with refresh-token reuse detection (Auth0; Okta with a grace
// period of 0) revokes the grant for the replay: the person is signed
// out. Housekeeping prunes the claims with the other single-use IDs.
const refreshClaimKind = "token_refresh"

// errWaitEnded is the cause of a flight that ended with the request that
// led it, while it waited for another instance's refresh: no verdict on
// the session, which the requests that joined the flight, still waiting,
// ask for again.
var errWaitEnded = errors.New("the request ended while waiting for another instance's refresh")

// errRefreshClaimed is the cause of a refresh this instance did not make:
// another instance claimed it, and its tokens did not land in the store
// within Config.RefreshRaceWindow, twice.
var errRefreshClaimed = errors.New("another instance sharing the store holds the refresh, and its tokens did not land in the store")

// RefreshFunc asks the identity provider for fresh tokens in exchange for
// t.RefreshToken (idp/oidc's Provider.Refresh). The tokens it returns are
// complete: a refresh that returns no new ID token or refresh token keeps
// t's. An error wrapping idp.ErrGrantRevoked ends the session. Tokens
// returned with any other error are the session's all the same (the IdP
// issued them, and may have retired t's refresh token: a refreshed ID
// token refused for a passing reason), and the error is logged.
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
// another instance may have refreshed) when the identity is, unless the
// store did not take the last renewed tokens (Manager.unsaved).
type upstream struct {
	values     UpstreamTokens
	tokens     *Tokens
	expiry     int64 // unix nanos; 0: the IdP gave none, and the token is never refreshed
	refreshing bool  // a refresh token is at hand
	// notBefore (unix nanos) holds off the next refresh: after a failed
	// attempt, or when the IdP issues tokens that live no longer than a
	// route's margin, which would otherwise be refreshed on every request.
	notBefore int64
	// renewedAt (unix nanos; 0: not known) is when the IdP renewed tokens
	// read from the store, sealed with them: such tokens, living no longer
	// than a route's margin, are held to half their life here too, not
	// only on the instance that renewed them.
	renewedAt int64
	// failed, when set, is the answer until notBefore: the access token
	// expired and the IdP could not renew it.
	failed error
	// base, with failed and a store shared by instances, is what the
	// store held when the failed attempt began: tokens stored since are
	// another instance's refresh, which the hold-off must not hide
	// (recheck).
	base *Tokens
	// unsaved, when set, says that storing these tokens failed
	// (Manager.unsaved holds them too, within its bound): the first
	// request from saveAt (unix nanos) on tries again.
	unsaved *unsavedTokens
	saveAt  int64
}

// unsavedTokens are a session's tokens that the IdP renewed but the store
// did not take (Manager.unsaved). They are the session's: the stored
// refresh token may be retired at the IdP, and refreshing with it again
// would end the session, or, at an IdP with reuse detection, the grant.
type unsavedTokens struct {
	tokens *Tokens
	// base is what the store holds, from which they were renewed: storing
	// them again is the same swap (swapTokens) that failed.
	base    *Tokens
	at      time.Time // when the IdP renewed them
	expires int64     // unix nanos: the session's end, after which they go
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

// newUpstreamAt is newUpstream for tokens the IdP renewed at (zero: not
// known).
func newUpstreamAt(t *Tokens, at time.Time) *upstream {
	u := newUpstream(t)
	if !at.IsZero() {
		u.renewedAt = at.UnixNano()
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
		return nil, now < u.notBefore && u.base == nil, u.failed
	}
	return u, u.fresh(now, margin), nil
}

// holdsOff reports whether u is a failure whose hold-off, at now, spares
// the IdP but not the store (base): the flight re-reads the stored tokens
// (recheck).
func (u *upstream) holdsOff(now int64) bool {
	return u != nil && u.failed != nil && u.base != nil && now < u.notBefore
}

// fresh reports whether the tokens can be passed on at now without a
// refresh, or another attempt to store them (not before saveAt): the
// expiry is unknown; or more than margin away; or the access token is
// valid and either nothing can renew it or notBefore holds the refresh
// off; or they live no longer than margin from renewedAt, and half that
// life is not over.
func (u *upstream) fresh(now int64, margin time.Duration) bool {
	switch {
	case u.saveAt != 0 && now >= u.saveAt:
		return false // time to store them again
	case u.expiry == 0:
		return true
	case now >= u.expiry:
		return false
	case !u.refreshing || now < u.notBefore:
		return true
	case u.renewedAt != 0 && u.expiry-u.renewedAt <= int64(margin):
		return now < u.renewedAt+(u.expiry-u.renewedAt)/2
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
// refreshed them already; with instances sharing the store, one of them
// claims the refresh, and the others wait for its tokens instead of
// presenting the same refresh token (takeRefresh). After a failed
// refresh the IdP is asked again no sooner than RefreshRetry later, but
// such instances re-read the store meanwhile (recheck). Tokens the IdP
// renewed are never dropped for a failed store write: they serve the
// requests, and the first one RefreshRetry later stores them again (and
// the next refresh uses them, not the refresh token the IdP may have
// retired). When the IdP refuses the refresh for good
// (idp.ErrGrantRevoked), the session ends (audited session.revoked,
// ReasonGrantRevoked) and ErrNoSession is returned, unless another
// instance's refresh lands in the store within Config.RefreshRaceWindow
// (the refusal was a race lost to it, the grant is alive): its tokens are
// then the session's. Meanwhile the session's
// other requests are passed its access token while it is valid. A ctx
// that ends first ends its own request's wait, leading the flight or
// not, with ErrRefreshFailed wrapping its error; the refresh goes on for
// the requests after it, and the session is kept.
// ErrNoUpstreamToken means there is no valid access token to pass;
// ErrRefreshFailed (a *RefreshFailedError when the IdP failed), that the
// IdP could not renew an expired token; any other error, that the store
// failed.
func (m *Manager) UpstreamTokens(ctx context.Context, id *Identity, margin time.Duration, refresh RefreshFunc) (*UpstreamTokens, error) {
	if u, ok, err := id.upstream.Load().cached(m.now().UnixNano(), margin); ok {
		if err != nil {
			return nil, err
		}
		return &u.values, nil
	}
	// The refresh outlives a request that gives up: its result serves
	// every request waiting for it, and the next ones; the IdP client's
	// timeout and Config.RefreshRaceWindow bound it. Only the wait for
	// another instance's refresh (refreshFailed, takeRefresh) ends with
	// the request that leads the flight: that wait is this request's
	// own, and a verdict it does not reach is no verdict.
	for {
		ch := m.flight.DoChan(id.SessionHash, func() (v any, err error) {
			// DoChan re-panics in a goroutine of its own, where nothing
			// recovers: a panic would stop the server, not fail a request.
			defer func() {
				if p := recover(); p != nil {
					m.logger.Error("refreshing a session's tokens panicked", zap.String("idp", id.IdP), zap.Any("panic", p), zap.StackSkip("stack", 1))
					v, err = nil, fmt.Errorf("%w: panic: %v", ErrRefreshFailed, p)
				}
			}()
			return m.renew(context.WithoutCancel(ctx), ctx, id, margin, refresh)
		})
		select {
		case r := <-ch:
			if errors.Is(r.Err, errWaitEnded) && ctx.Err() == nil {
				continue // the leader's request ended, not this one's: ask again
			}
			if r.Err != nil {
				return nil, r.Err
			}
			return &r.Val.(*upstream).values, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the request ended while waiting for the session's token refresh, which goes on: %w", ErrRefreshFailed, ctx.Err())
		}
	}
}

// renew is UpstreamTokens' single flight: the session's tokens, refreshed
// when they must be. req is the leading request's context, which cuts
// short the wait for another instance's refresh (refreshFailed).
func (m *Manager) renew(ctx, req context.Context, id *Identity, margin time.Duration, refresh RefreshFunc) (*upstream, error) {
	now := m.now()
	// A flight that ended just before this one began may have renewed them.
	prev := id.upstream.Load()
	if u, ok, err := prev.cached(now.UnixNano(), margin); ok {
		return u, err
	}
	h, ok := parseHash(id.SessionHash)
	if !ok {
		return nil, ErrNoSession
	}
	if prev.holdsOff(now.UnixNano()) {
		return m.recheck(ctx, id, h, prev, now.UnixNano())
	}
	// A session ended while this flight runs takes its tokens with it:
	// keepUnsaved refuses to hold them past a forget after since.
	since := m.forgets.Load()
	held, base, heldAt, pending, err := m.held(ctx, id, h, since)
	if errors.Is(err, ErrNoSession) {
		m.endedElsewhere(id, h)
	}
	if err != nil {
		return nil, err
	}
	if held == nil || held.AccessToken == "" {
		return nil, ErrNoUpstreamToken
	}
	u := newUpstreamAt(held, heldAt)
	u.setUnsaved(pending, now.UnixNano())
	if u.fresh(now.UnixNano(), margin) {
		id.upstream.Store(u)
		return u, nil
	}
	if !u.refreshing {
		return nil, ErrNoUpstreamToken // expired, and nothing renews it
	}
	retry := RefreshRetry
	if m.bc != nil {
		taken, claimed, err := m.takeRefresh(ctx, req, id, h, base, held, heldAt, pending)
		switch {
		case errors.Is(err, errRefreshClaimed):
			return m.refreshFailed(ctx, req, id, h, base, held, pending, err, RefreshRetry)
		case taken != nil || err != nil:
			return taken, err
		}
		// The next attempt must not find this one's claim and wait for
		// a refresh that is not coming: no sooner than the claim ends.
		retry = max(retry, time.Until(claimed))
	}
	renewed, err := refresh(ctx, held)
	if renewed == nil || errors.Is(err, idp.ErrGrantRevoked) {
		if err == nil {
			err = errors.New("the identity provider returned no tokens")
		}
		return m.refreshFailed(ctx, req, id, h, base, held, pending, err, retry)
	}
	if err != nil {
		// The IdP renewed the tokens, and refused part of the answer (a
		// new ID token that does not verify): the renewed tokens are
		// kept, with the ID token the session had.
		m.logger.Warn("refreshing a session's tokens: part of the identity provider's answer was refused; its new access and refresh tokens are kept",
			zap.String("idp", id.IdP), zap.Error(err))
	}
	renewedAt := m.now()
	kept, keptAt, err := m.swapTokens(ctx, h, id.SessionHash, base, renewed, renewedAt)
	pending = nil
	switch {
	case err == nil:
	case errors.Is(err, ErrNoSession):
		return nil, err
	default:
		// The IdP may have retired the stored refresh token already:
		// the renewed tokens serve this request and the next ones,
		// which store them again, rather than be lost.
		m.logger.Warn("storing a session's renewed tokens failed; they are kept in memory and stored again with a later request",
			zap.String("idp", id.IdP), zap.Error(err))
		pending = &unsavedTokens{tokens: renewed, base: base, at: renewedAt, expires: id.Expires.UnixNano()}
		if !m.keepUnsaved(h, id, since, pending) {
			return nil, ErrNoSession
		}
		kept, keptAt = renewed, renewedAt
	}
	u = newUpstreamAt(kept, keptAt)
	now = m.now()
	u.setUnsaved(pending, now.UnixNano())
	if kept == renewed && !kept.Expiry.IsZero() && kept.Expiry.Sub(now) <= margin {
		// The IdP's tokens live no longer than the margin: refresh at
		// half their life instead of on every request.
		u.notBefore = now.Add(kept.Expiry.Sub(now) / 2).UnixNano()
		m.logger.Warn("the identity provider issues access tokens that live no longer than the route's token_refresh_margin; refreshing at half their lifetime instead",
			zap.String("idp", id.IdP), zap.Duration("lifetime", kept.Expiry.Sub(now)), zap.Duration("margin", margin))
	}
	id.upstream.Store(u)
	return u, nil
}

// setUnsaved marks u's tokens as p's, which the store did not take (nil:
// stored): the first request from RefreshRetry after now on stores them.
func (u *upstream) setUnsaved(p *unsavedTokens, now int64) {
	if p != nil {
		u.unsaved, u.saveAt = p, now+int64(RefreshRetry)
	}
}

// held returns the session's tokens, when the IdP renewed them (if
// known), and base, what the store holds for it: the same, unless the IdP
// renewed the tokens and storing them failed (Manager.unsaved, or the
// identity's cached tokens beyond its bound). Such tokens are stored
// first; when that fails again, they are returned as they are, with the
// base they would replace, and as pending.
func (m *Manager) held(ctx context.Context, id *Identity, h tokenHash, since uint64) (held, base *Tokens, at time.Time, pending *unsavedTokens, err error) {
	m.mu.RLock()
	p := m.unsaved[h]
	m.mu.RUnlock()
	if u := id.upstream.Load(); p == nil && u != nil {
		p = u.unsaved
	}
	if p == nil {
		stored, at, err := m.tokensAt(ctx, id.SessionHash)
		return stored, stored, at, nil, err
	}
	// First stored wins, as for any refresh: when another instance has
	// stored tokens since, they are kept and these dropped.
	kept, at, err := m.swapTokens(ctx, h, id.SessionHash, p.base, p.tokens, p.at)
	switch {
	case err == nil:
		return kept, kept, at, nil, nil
	case errors.Is(err, ErrNoSession):
		return nil, nil, time.Time{}, nil, err
	}
	m.logger.Warn("storing a session's renewed tokens failed again; they are kept in memory", zap.String("idp", id.IdP), zap.Error(err))
	if !m.keepUnsaved(h, id, since, p) {
		return nil, nil, time.Time{}, nil, ErrNoSession
	}
	return p.tokens, p.base, p.at, p, nil
}

// keepUnsaved holds p, the renewed tokens of the session h that the store
// did not take, until held stores them or the session ends. They are
// bounded like the session cache: sessions past their end go first, and
// beyond the cache's size they are held only with the cached identity
// (upstream.unsaved), which a reload drops. It reports false, holding
// nothing, when the session or its user was forgotten after since (a
// logout or revocation while the refresh ran): the tokens must then serve
// nothing more.
func (m *Manager) keepUnsaved(h tokenHash, id *Identity, since uint64, p *unsavedTokens) bool {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.forgottenSinceLocked(since, h, id.UserID) {
		delete(m.unsaved, h)
		return false
	}
	if _, ok := m.unsaved[h]; !ok && len(m.unsaved) >= m.cfg.CacheSize {
		for k, q := range m.unsaved {
			if q.expires <= now {
				delete(m.unsaved, k)
			}
		}
		if len(m.unsaved) >= m.cfg.CacheSize {
			m.logger.Error("too many sessions' renewed tokens wait to be stored; these are held only while their session stays cached", zap.String("idp", id.IdP))
			return true
		}
	}
	m.unsaved[h] = p
	return true
}

// dropUnsaved forgets the unsaved tokens of the session h: they have been
// stored, or given way to tokens another instance stored.
func (m *Manager) dropUnsaved(h tokenHash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.unsaved, h)
}

// refreshFailed decides what a failed refresh leaves the request with:
// used are the tokens the refresh was asked with, base what the store
// held for the session (used, unless storing used failed: pending). A
// refusal for good (idp.ErrGrantRevoked) first waits for another
// instance's refresh to land (Config.RefreshRaceWindow), for as long as req
// lasts. Any other failure holds the next attempt off for retry.
func (m *Manager) refreshFailed(ctx, req context.Context, id *Identity, h tokenHash, base, used *Tokens, pending *unsavedTokens, cause error, retry time.Duration) (*upstream, error) {
	now := m.now().UnixNano()
	revoked := errors.Is(cause, idp.ErrGrantRevoked)
	// Another instance may have refreshed, and rotated the refresh token
	// this one used, since the store was read: its tokens are the
	// session's now. Refused for good, this one may even have raced it
	// at the IdP, its tokens not stored yet: they are waited for.
	again, againAt, err := m.tokensAt(ctx, id.SessionHash)
	cut := false
	if window := m.refreshRaceWindow(); revoked && window > 0 && !errors.Is(err, ErrNoSession) && !rotated(again, base) {
		again, againAt, cut, err = m.awaitRotation(ctx, req, id, used, pending, now, window, func(t *Tokens) bool { return rotated(t, base) })
	}
	switch {
	case errors.Is(err, ErrNoSession):
		m.endedElsewhere(id, h)
		return nil, err
	case cut:
		// The request gave up before the verdict: the session is not
		// ended on a guess. The next request after the tokens held
		// meanwhile (if any) asks again.
		return nil, fmt.Errorf("%w: the identity provider refused the refresh token, and %w (%v): %w", ErrRefreshFailed, errWaitEnded, cause, req.Err())
	case err == nil && rotated(again, base):
		if u, ok := m.adopt(id, h, again, againAt, now, 0); ok {
			return u, nil
		}
	}
	if revoked {
		m.logger.Info("session ended: the identity provider refused to refresh its tokens",
			zap.String("idp", id.IdP), zap.String("user_id", id.UserID), zap.Error(cause))
		if err := m.End(ctx, id.SessionHash, store.EventSessionRevoked, ReasonGrantRevoked); err != nil {
			return nil, err
		}
		id.upstream.Store(ended)
		return nil, ErrNoSession
	}
	m.logger.Warn("refreshing a session's tokens failed", zap.String("idp", id.IdP), zap.Error(cause))
	if u, ok := m.passWhileValid(id, used, time.Time{}, pending, now, retry); ok {
		return u, nil // still valid: pass it on, and try again later
	}
	// Expired: requests fail until the next attempt is due (which also
	// stores unsaved tokens, Manager.unsaved keeping them meanwhile),
	// unless another instance sharing the store renews them meanwhile
	// (base: recheck).
	f := &upstream{notBefore: now + int64(retry), unsaved: pending}
	err = &RefreshFailedError{RetryAt: time.Unix(0, f.notBefore), Err: cause}
	f.failed = err
	if m.bc != nil {
		f.base = base
	}
	id.upstream.Store(f)
	return nil, err
}

// recheck is the flight of a request during the hold-off after a failed
// refresh (f, holdsOff), with a store shared by instances: the IdP is not
// asked again before f.notBefore, but another instance may have renewed
// the tokens since, and stored them. Those are the session's when they
// are valid; otherwise f's failure stands.
func (m *Manager) recheck(ctx context.Context, id *Identity, h tokenHash, f *upstream, now int64) (*upstream, error) {
	stored, at, err := m.tokensAt(ctx, id.SessionHash)
	switch {
	case errors.Is(err, ErrNoSession):
		m.endedElsewhere(id, h)
		return nil, err
	case err != nil || !renewedSince(stored, f.base):
		// A store that fails here fails the request as the IdP did:
		// the hold-off's answer, not the store's.
		return nil, f.failed
	}
	// Not refreshed here before the hold-off ends, however close to
	// their expiry: the IdP failed a moment ago.
	if u, ok := m.adopt(id, h, stored, at, now, f.notBefore); ok {
		return u, nil
	}
	return nil, f.failed
}

// endedElsewhere drops the session h, which the store no longer holds
// (ended by another instance, its broadcast lost), here too, with its
// unsaved tokens: else the routes that pass no tokens would serve it
// until CacheTTL. Requests holding id pass nothing more.
func (m *Manager) endedElsewhere(id *Identity, h tokenHash) {
	m.forget(h)
	id.upstream.Store(ended)
}

// adopt makes t, tokens another instance renewed (at, if known) and
// stored, the session's answer from now on, unless they have expired by
// now: first stored wins, so this instance's unsaved tokens, if any, go.
// notBefore, when set, holds off their refresh.
func (m *Manager) adopt(id *Identity, h tokenHash, t *Tokens, at time.Time, now, notBefore int64) (*upstream, bool) {
	u := newUpstreamAt(t, at)
	if u.expiry != 0 && now >= u.expiry {
		return nil, false
	}
	u.notBefore = notBefore
	m.dropUnsaved(h)
	id.upstream.Store(u)
	return u, true
}

// passWhileValid makes t (renewed at, if known) the session's answer for
// holdOff from now, while its access token is valid, with pending, the
// unsaved tokens it may be: the refresh waits (another instance's, or the
// next attempt after a failed one) without holding requests up. It
// reports false, storing nothing, when the access token has expired.
func (m *Manager) passWhileValid(id *Identity, t *Tokens, at time.Time, pending *unsavedTokens, now int64, holdOff time.Duration) (*upstream, bool) {
	u := newUpstreamAt(t, at)
	if now >= u.expiry {
		return nil, false
	}
	u.notBefore = now + int64(holdOff)
	u.setUnsaved(pending, now)
	id.upstream.Store(u)
	return u, true
}

// renewedSince reports whether the stored tokens t are another refresh's
// than base: a new access token, or, at an IdP that rotates them, a new
// refresh token.
func renewedSince(t, base *Tokens) bool {
	return t != nil && (t.AccessToken != base.AccessToken || t.RefreshToken != base.RefreshToken)
}

// claimRefresh claims, for the instances sharing the store, the refresh of
// the session stored under hash with t's refresh token, until window from
// now (Config.RefreshRaceWindow, within which a refresh under way has
// stored its tokens): won reports whether this instance may ask the IdP.
// The claim is a single-use ID (refreshClaimKind), the hash of the session
// and the tokens, never a token; a claim past its until is free again, so
// a winner that stopped holds no session back for longer. The access
// token is in it as the refresh token is: an IdP that does not rotate
// refresh tokens (Entra ID, Google) leaves the refresh token as it was,
// and a refresh within the window of the last one would otherwise find
// the last one's claim, even this instance's own, and wait for a refresh
// that has been made. Every refresh renews the access token.
func (m *Manager) claimRefresh(ctx context.Context, hash string, t *Tokens) (won bool, until time.Time, err error) {
	claim := refreshClaimID(hash, t)
	// The store compares until with its own clock, the real one, as the
	// other instances do: not with m.now.
	until = time.Now().Add(m.refreshRaceWindow())
	err = m.store.Update(ctx, func(tx store.Tx) error {
		var err error
		won, err = tx.Consume(refreshClaimKind, claim, until)
		return err
	})
	if err != nil {
		return false, until, fmt.Errorf("session: claiming the refresh: %w", err)
	}
	return won, until, nil
}

// refreshClaimID is the single-use ID under which instances claim the
// refresh of the session stored under hash, with tokens t (claimRefresh).
func refreshClaimID(hash string, t *Tokens) string {
	sum := sha256.Sum256([]byte(hash + "\x00" + t.RefreshToken + "\x00" + t.AccessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// takeRefresh decides, with a store shared by instances, whether this
// instance refreshes held (the session's tokens, base what the store
// holds): it claims the refresh (claimRefresh), and claimed, returns the
// claim's end. Another instance holding the claim is refreshing: while
// held's access token (renewed at heldAt) is valid, this one passes it,
// and reads the store again no sooner than the window's end, by when the
// other instance's tokens have landed or its claim has lapsed (or once
// the token expires, if sooner): no request waits for an IdP that may be
// slow or away while it has a token to pass. With an expired token, this
// one waits for the other's tokens (awaitRotation) and returns them. When
// the window passes with none stored, the claim has lapsed (the other
// instance stopped, or its refresh failed): this one claims it again, and
// refreshes; lost once more, it gives up with errRefreshClaimed, as for a
// failed refresh. A store that does not take the claim is logged and the
// refresh goes ahead unclaimed (a store away is what the unsaved tokens
// are for).
func (m *Manager) takeRefresh(ctx, req context.Context, id *Identity, h tokenHash, base, held *Tokens, heldAt time.Time, pending *unsavedTokens) (*upstream, time.Time, error) {
	for waited := false; ; waited = true {
		won, until, err := m.claimRefresh(ctx, id.SessionHash, held)
		switch {
		case err != nil:
			m.logger.Warn("claiming a session's token refresh for this instance failed; refreshing all the same",
				zap.String("idp", id.IdP), zap.Error(err))
			return nil, until, nil
		case won:
			return nil, until, nil
		case waited:
			return nil, until, errRefreshClaimed
		}
		now := m.now().UnixNano()
		if u, ok := m.passWhileValid(id, held, heldAt, pending, now, m.refreshRaceWindow()); ok {
			return u, until, nil
		}
		last, lastAt, cut, err := m.awaitRotation(ctx, req, id, held, pending, now, m.refreshRaceWindow(), func(t *Tokens) bool { return renewedSince(t, base) })
		switch {
		case errors.Is(err, ErrNoSession):
			m.endedElsewhere(id, h)
			return nil, until, err
		case cut:
			return nil, until, fmt.Errorf("%w: %w: %w", ErrRefreshFailed, errWaitEnded, req.Err())
		case renewedSince(last, base):
			if u, ok := m.adopt(id, h, last, lastAt, m.now().UnixNano(), 0); ok {
				return u, until, nil
			}
		}
	}
}

// refreshRaceWindow is how long a refresh refused as revoked waits for
// another instance's: none without other instances.
func (m *Manager) refreshRaceWindow() time.Duration {
	if m.bc == nil {
		return 0
	}
	return m.cfg.RefreshRaceWindow
}

// ended is the cached answer of an identity whose session ended while its
// tokens were being refreshed: requests still holding it pass nothing.
var ended = &upstream{failed: ErrNoSession, notBefore: math.MaxInt64}

// rotated reports whether the stored tokens t are another refresh's than
// base (what the store held when this one began): every IdP that rotates
// refresh tokens changes it, which is what a refusal could be lost to.
func rotated(t, base *Tokens) bool {
	return t != nil && t.RefreshToken != base.RefreshToken
}

// awaitRotation re-reads the session's stored tokens, with a pause
// doubling from refreshLandFirstPoll to refreshLandMaxPoll, until another
// instance's refresh has stored its own (landed), window has passed, or
// req ends (cut). It returns the tokens last read and when the IdP
// renewed them (if sealed with them); ErrNoSession
// when the session ended meanwhile. It runs in the session's refresh flight:
// while it waits, the access token used, if still valid at now, answers
// this identity's other requests (until the window's end at the latest)
// instead of the flight.
func (m *Manager) awaitRotation(ctx, req context.Context, id *Identity, used *Tokens, pending *unsavedTokens, now int64, window time.Duration, landed func(*Tokens) bool) (last *Tokens, lastAt time.Time, cut bool, err error) {
	m.passWhileValid(id, used, time.Time{}, pending, now, window)
	deadline := time.Now().Add(window) // the other instance's time: a real clock
	for pause := refreshLandFirstPoll; ; pause = min(2*pause, refreshLandMaxPoll) {
		left := time.Until(deadline)
		if left <= 0 {
			return last, lastAt, false, nil
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-req.Done():
			t.Stop()
			return last, lastAt, true, nil
		case <-t.C:
		}
		again, at, err := m.tokensAt(ctx, id.SessionHash)
		switch {
		case errors.Is(err, ErrNoSession):
			return nil, time.Time{}, false, err
		case err != nil:
			// A passing store error: read again at the next pause
			// (and End, should the window pass, reports a store that
			// stays down).
			m.logger.Warn("reading a session's tokens again after the identity provider refused to refresh them failed", zap.String("idp", id.IdP), zap.Error(err))
			continue
		}
		last, lastAt = again, at
		if landed(again) {
			return again, at, false, nil
		}
	}
}

// swapTokens stores renewed in place of old, unless the session's stored
// tokens are no longer old (another instance refreshed first): then the
// stored ones are kept and returned, so that every instance goes on with
// the same refresh token. ErrNoSession when the session has ended. Either
// way the tokens the session h held in memory for want of a store write
// (Manager.unsaved) are done with: stored, given way, or ended with it.
// renewed is sealed with at, when the IdP renewed it; keptAt is the kept
// tokens' (zero: not known).
func (m *Manager) swapTokens(ctx context.Context, h tokenHash, hash string, old, renewed *Tokens, at time.Time) (kept *Tokens, keptAt time.Time, err error) {
	plain, err := m.zip.renewedPlain(renewed, at)
	if err != nil {
		return nil, time.Time{}, err
	}
	err = m.store.Update(ctx, func(tx store.Tx) error {
		kept, keptAt = renewed, at
		if err := m.storedLive(tx, hash); err != nil {
			return err
		}
		st, err := readSealed(tx, hash)
		if err != nil {
			return err
		}
		cur, curAt, err := openTokensAt(st.key, hash, st.blob)
		if err != nil {
			return err
		}
		// Every refresh changes the access token, and a rotating IdP the
		// refresh token: either differing means another flight stored.
		if cur != nil && (cur.RefreshToken != old.RefreshToken || cur.AccessToken != old.AccessToken) {
			kept, keptAt = cur, curAt
			return nil
		}
		return putSealed(tx, hash, plain)
	})
	if errors.Is(err, store.ErrNotFound) {
		m.forget(h) // and its unsaved tokens with it
		return nil, time.Time{}, ErrNoSession
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("session: storing refreshed tokens: %w", err)
	}
	m.dropUnsaved(h)
	return kept, keptAt, nil
}

// End ends the session stored under hash (store.Session.Hash), here and on
// the instances sharing the store, and audits it as eventType with reason.
// A session that has ended already is not an error: one still stored past
// its stored end (signed out, or found expired) is deleted without an
// audit event, its end having been audited when it came, if ever.
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
		if m.pastEnd(s) {
			return nil
		}
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
