package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

// defaultIdentityJWTHeader carries the signed identity to the upstream.
const defaultIdentityJWTHeader = "X-Forwarded-Identity-Jwt"

// defaultIdentityJWTTTL is how long one signed identity token is valid.
const defaultIdentityJWTTTL = 5 * time.Minute

// IdentityJWT asks the handler to send the upstream a short-lived ES256
// JWT of the identity, verifiable with the keys at <path_prefix>jwks.json.
type IdentityJWT struct {
	// Header carries the token. Default: X-Forwarded-Identity-Jwt.
	Header string `json:"header,omitempty"`
	// TTL is the token lifetime. Default: 5m.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// Audience is the aud claim. Default: the site origin
	// (scheme://host), which is also the iss claim.
	Audience string `json:"audience,omitempty"`
	// KeyRotation is how long one signing key signs. Default: 7 days;
	// the previous and next keys are published alongside.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`
}

// identitySigner signs and caches the identity tokens of one route. A
// token is signed once per session identity and re-signed when less than
// half its lifetime remains, never per request.
type identitySigner struct {
	header   string
	ttl      time.Duration
	audience string
	rotation time.Duration

	keysMu sync.Mutex
	keys   *upstreamjwt.Keyring // opened on first use: the store opens at Start

	cache     sync.Map // *session.Identity -> *signedToken
	lastSweep atomic.Int64
}

type signedToken struct {
	value   []string // one-element header value, shared read-only
	origin  origin   // the site it was issued for
	refresh int64    // unix nanos: re-sign from then on
	expires int64
}

func newIdentitySigner(c *IdentityJWT) *identitySigner {
	s := &identitySigner{header: http.CanonicalHeaderKey(c.Header), ttl: time.Duration(c.TTL), audience: c.Audience,
		rotation: time.Duration(c.KeyRotation)}
	if s.header == "" {
		s.header = defaultIdentityJWTHeader
	}
	if s.ttl <= 0 {
		s.ttl = defaultIdentityJWTTTL
	}
	return s
}

// keyring returns the signing keys kept in db, opening them on first use.
func (s *identitySigner) keyring(ctx context.Context, db store.Store) (*upstreamjwt.Keyring, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if s.keys == nil {
		keys, err := upstreamjwt.Open(ctx, db, s.rotation, nil)
		if err != nil {
			return nil, fmt.Errorf("identity_jwt keys: %w", err)
		}
		s.keys = keys
	}
	return s.keys, nil
}

// token returns the signed identity for id on the site o (the iss claim,
// and aud unless an audience is configured).
func (s *identitySigner) token(ctx context.Context, db store.Store, id *session.Identity, o origin) ([]string, error) {
	now := time.Now().UnixNano()
	if v, ok := s.cache.Load(id); ok {
		if t := v.(*signedToken); now < t.refresh && t.origin == o {
			return t.value, nil
		}
	}
	iss := o.String()
	aud := s.audience
	if aud == "" {
		aud = iss
	}
	// A token never outlives the session's absolute lifetime.
	ttl := min(s.ttl, time.Until(id.Expires))
	if ttl <= 0 {
		ttl = time.Second
	}
	keys, err := s.keyring(ctx, db)
	if err != nil {
		return nil, err
	}
	tok, exp, err := keys.Sign(ctx, iss, aud, id.UserID, upstreamjwt.Claims{
		Email: id.Email, GivenName: id.FirstName, Family: id.LastName, Groups: id.Groups, IdP: id.IdP,
	}, ttl)
	if err != nil {
		return nil, err
	}
	t := &signedToken{value: []string{tok}, origin: o, refresh: now + int64(ttl/2), expires: exp.UnixNano()}
	s.cache.Store(id, t)
	s.sweep(now)
	return t.value, nil
}

// sweep drops expired tokens (of sessions that ended or whose identity
// changed) at most twice per token lifetime, so the cache holds only
// identities seen lately.
func (s *identitySigner) sweep(now int64) {
	last := s.lastSweep.Load()
	if now-last < int64(s.ttl/2) || !s.lastSweep.CompareAndSwap(last, now) {
		return
	}
	s.cache.Range(func(k, v any) bool {
		if v.(*signedToken).expires <= now {
			s.cache.Delete(k)
		}
		return true
	})
}
