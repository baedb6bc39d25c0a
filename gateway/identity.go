package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

// DefaultIdentityJWTHeader carries the signed identity to the upstream.
const DefaultIdentityJWTHeader = "X-Forwarded-Identity-Jwt"

// DefaultIdentityJWTTTL is how long one signed identity token is valid.
const DefaultIdentityJWTTTL = 5 * time.Minute

// IdentitySigner signs and caches the identity tokens of one route. A
// token is signed once per session and re-signed when less than half its
// lifetime remains, or at once when what it says changes (the user's
// groups, say, or the site it is for), never per request.
type IdentitySigner struct {
	header   string
	ttl      time.Duration
	audience string
	rotation time.Duration
	now      func() time.Time

	keysMu sync.Mutex                          // makes keys once
	keys   atomic.Pointer[upstreamjwt.Keyring] // made on first use: the store opens at Start

	// By session (Identity.SessionHash), not by *session.Identity: the
	// session cache builds a new Identity at each re-read of the store
	// (every CacheTTL), and a token per Identity was re-signed as often.
	cache     sync.Map // string -> *signedToken
	lastSweep atomic.Int64
}

type signedToken struct {
	value   []string // one-element header value, shared read-only
	origin  Origin   // the site it was issued for
	signed  int64    // unix nanos: when it was signed (iat and nbf are ClockAllowance before)
	refresh int64    // unix nanos: re-sign from then on
	expires int64
	// id is the identity it was signed for, or a later one found to say
	// the same (sameClaims): a hit on the same Identity compares nothing.
	id *session.Identity
	// keys is the keyring's Replaced count before it was signed: after
	// `caddy sso keys rotate` retired its key, it is signed again.
	keys int64
}

// sameClaims reports whether a token signed for a says what one for b
// would: the same user, profile, groups and IdP, and a session that ends
// at the same time (a token never outlives it). A session's re-read from
// the store gives a new Identity that usually says the same.
func sameClaims(a, b *session.Identity) bool {
	return a.UserID == b.UserID && a.Email == b.Email && a.FirstName == b.FirstName && a.LastName == b.LastName &&
		a.IdP == b.IdP && a.Expires.Equal(b.Expires) && a.AuthTime.Equal(b.AuthTime) && slices.Equal(a.Groups, b.Groups)
}

// SignerConfig configures an IdentitySigner; zero fields take the
// defaults above (and upstreamjwt.DefaultRotation).
type SignerConfig struct {
	Header   string        // the header that carries the token
	TTL      time.Duration // a token's lifetime
	Audience string        // the aud claim; "" means the site origin
	Rotation time.Duration // how long one signing key signs
	// Now is the clock tokens are signed and cached by; nil means
	// time.Now (tests set the clock back).
	Now func() time.Time
}

// withDefaults fills in the defaults above for what is unset: the one
// place they are applied, for the signer, Validate and the JWKS's max-age.
func (c SignerConfig) withDefaults() SignerConfig {
	if c.Header == "" {
		c.Header = DefaultIdentityJWTHeader
	}
	if c.TTL <= 0 {
		c.TTL = DefaultIdentityJWTTTL
	}
	if c.Rotation <= 0 {
		c.Rotation = upstreamjwt.DefaultRotation
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// upstream is the token's header as CheckUpstreamHeaders takes it.
func (c SignerConfig) upstream() UpstreamHeader {
	return UpstreamHeader{Setting: SettingIdentityJWT, Name: c.withDefaults().Header}
}

// Validate checks the settings on their own: the header's name, by the
// rule of every header a route sets (CheckUpstreamHeaders;
// CheckRouteHeaders holds it to the route's other headers), durations not
// negative, and a key that signs at least as long as a token lives: the
// JWKS publishes the previous, current and next keys only, so a token
// that outlived one rotation period past its key's would name a key no
// longer published, and fail to verify while unexpired. The audience is
// the aud claim as written: a placeholder is never resolved, and the
// upstream would refuse every token.
func (c SignerConfig) Validate() error {
	if err := cmp.Or(CheckUpstreamHeaders(c.upstream()), idp.CheckLiteral("identity_jwt audience", c.Audience)); err != nil {
		return err
	}
	if c.TTL < 0 || c.Rotation < 0 {
		return errors.New("identity_jwt ttl and key_rotation must be positive")
	}
	d := c.withDefaults()
	if d.TTL < time.Second || d.TTL%time.Second != 0 || d.Rotation%time.Second != 0 {
		// JWT times are whole seconds, and the signing keys are named by
		// their rotation in seconds: 1s and 1.5s routes would share keys.
		return fmt.Errorf("identity_jwt ttl %v and key_rotation %v must be whole seconds, at least 1s", d.TTL, d.Rotation)
	}
	if ttl, rotation := d.TTL, d.Rotation; rotation < ttl {
		return fmt.Errorf("identity_jwt key_rotation %v is shorter than ttl %v: a token must not outlive its signing key's publication (the JWKS publishes the previous, current and next keys only), so key_rotation must be at least ttl (defaults: ttl %v, key_rotation %v)",
			rotation, ttl, DefaultIdentityJWTTTL, upstreamjwt.DefaultRotation)
	}
	return nil
}

// NewIdentitySigner returns a signer for one route.
func NewIdentitySigner(c SignerConfig) *IdentitySigner {
	c = c.withDefaults()
	return &IdentitySigner{header: http.CanonicalHeaderKey(c.Header), ttl: c.TTL, audience: c.Audience,
		rotation: c.Rotation, now: c.Now}
}

// SignIdentity makes the route send the upstream a signed identity token,
// and protects its header from inbound copies, so that a client cannot
// send one of its own; the signer joins Keys (a set of its own when the
// route has none), which the JWKS publishes. Call it after Headers and
// Keys are set.
func (rt *Route) SignIdentity(c SignerConfig) {
	rt.Signer = NewIdentitySigner(c)
	rt.Headers.Protect(rt.Signer.Header())
	if rt.Keys == nil {
		rt.Keys = new(IdentityKeys)
	}
	rt.Keys.Add(rt.Signer)
}

// IdentityKeys is the identity token signers of the sso routes of one
// config, together: every one of its routes publishes all their keys at
// <path_prefix>jwks.json, with identity_jwt or without. Routes share a
// host's endpoints (a stricter sso inside a protected site has the outer
// one serve them, README "A stricter sso"), so the route that answers
// jwks.json is not always the one that signed the token, nor signs with
// the same key_rotation: the keys are public, and the set verifies the
// tokens of every route. A reload provisions a new config with a new set.
// The zero value is ready to use.
type IdentityKeys struct {
	mu      sync.Mutex
	signers []*IdentitySigner
}

// Add makes k publish s's keys.
func (k *IdentityKeys) Add(s *IdentitySigner) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.signers = append(k.signers, s)
}

// JWKS is the key set of every signer added, and the max-age a verifier
// may cache it for: that of the shortest key_rotation among them
// (jwksMaxAge), so that a cached copy still holds the key each one signs
// with next. Call it once a signer was added (publishes). Its error is the
// store's, as upstreamjwt.Union says.
func (k *IdentityKeys) JWKS(ctx context.Context, db store.Store) (b []byte, maxAge int, err error) {
	k.mu.Lock()
	signers := slices.Clone(k.signers)
	k.mu.Unlock()
	rings := make([]*upstreamjwt.Keyring, len(signers))
	shortest := signers[0].rotation
	for i, s := range signers {
		rings[i] = s.Keyring(db)
		shortest = min(shortest, s.rotation)
	}
	b, err = upstreamjwt.Union(ctx, rings...)
	return b, jwksMaxAge(shortest), err
}

// publishes reports whether k has a signer, so that jwks.json is served.
func (k *IdentityKeys) publishes() bool {
	if k == nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.signers) > 0
}

// Header is the canonical name of the header that carries the token.
func (s *IdentitySigner) Header() string { return s.header }

// Keyring returns the signing keys kept in db. It reads no store itself:
// the keyring does, at its first use.
func (s *IdentitySigner) Keyring(db store.Store) *upstreamjwt.Keyring {
	if k := s.keys.Load(); k != nil {
		return k
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if s.keys.Load() == nil {
		s.keys.Store(upstreamjwt.New(db, s.rotation, s.now))
	}
	return s.keys.Load()
}

// Token returns the signed identity for id on the site o (the iss claim,
// and aud unless an audience is configured) as a one-element header value.
func (s *IdentitySigner) Token(ctx context.Context, db store.Store, id *session.Identity, o Origin) ([]string, error) {
	at := s.now()
	now := at.UnixNano()
	keys := s.Keyring(db)
	replaced := keys.Replaced()
	if v, ok := s.cache.Load(id.SessionHash); ok {
		// The site is what iss and aud name. A token signed "in the
		// future" (the clock was set back since) is signed again, as the
		// session cache does with an entry loaded in the future: its iat
		// and nbf are as far ahead, and the app refuses it until then.
		if t := v.(*signedToken); now < t.refresh && now >= t.signed && t.origin.Site == o.Site && t.keys == replaced {
			if t.id == id {
				return t.value, nil
			}
			if sameClaims(t.id, id) {
				// Kept under the new Identity, so that its next
				// requests compare nothing (and the old one is freed).
				n := *t
				n.id = id
				s.cache.CompareAndSwap(id.SessionHash, t, &n)
				return t.value, nil
			}
		}
	}
	iss := o.Site.String()
	aud := s.audience
	if aud == "" {
		aud = iss
	}
	// A token never outlives the session's absolute lifetime: the
	// keyring bounds exp by the end (NotAfter) after its key read, which
	// may take a moment (or, the store slow, seconds). The cached token
	// is signed again at half the life it got.
	tok, exp, err := keys.Sign(ctx, iss, aud, id.UserID, upstreamjwt.Claims{
		Email: id.Email, GivenName: id.FirstName, Family: id.LastName, Groups: id.Groups, IdP: id.IdP,
		AuthTime: id.AuthTime, NotAfter: id.Expires,
	}, s.ttl)
	if err != nil {
		return nil, err
	}
	t := &signedToken{value: []string{tok}, origin: o, signed: now, refresh: now + min(int64(s.ttl), exp.UnixNano()-now)/2, expires: exp.UnixNano(), id: id,
		keys: replaced}
	s.cache.Store(id.SessionHash, t)
	s.sweep(now)
	return t.value, nil
}

// sweep drops expired tokens at most twice per token lifetime, so the
// cache holds only sessions seen lately: one that ended (or went unused)
// goes at most a token lifetime and a half after its last token was
// signed.
func (s *IdentitySigner) sweep(now int64) {
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
