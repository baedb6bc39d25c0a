// Package upstreamjwt signs short-lived ES256 identity tokens for the apps
// behind the gateway and publishes their verification keys as a JWKS. The
// signing keys live in the store, one per rotation period: the current one
// signs, the previous and the next one are published too, so that verifiers
// holding a cached JWKS keep working across a rotation. It knows nothing of
// Caddy.
package upstreamjwt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/store"
)

// DefaultRotation is how long one signing key signs before the next takes over.
const DefaultRotation = 7 * 24 * time.Hour

// Claims is the identity a token carries, besides the registered claims.
type Claims struct {
	Email     string   `json:"email,omitempty"`
	GivenName string   `json:"given_name,omitempty"`
	Family    string   `json:"family_name,omitempty"`
	Groups    []string `json:"groups"`
	IdP       string   `json:"idp,omitempty"`
	// AuthTime is when the person last authenticated at the IdP, for an
	// app that wants a recent authentication before a sensitive action:
	// the auth_time claim (OIDC Core 2, in seconds), which Sign leaves out
	// when it is zero (the IdP did not say).
	AuthTime time.Time `json:"-"`
	// NotAfter, when set, bounds the token's expiry (an identity's
	// session end): exp is at most its whole second, read against the
	// clock Sign reads after the key, so that a slow key read cannot carry
	// exp past it. A bound already passed gives the token a second.
	NotAfter time.Time `json:"-"`
}

// authTime is the auth_time claim, apart from Claims so that it is a
// NumericDate, as the registered times are, and absent when unknown.
type authTime struct {
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
}

type key struct {
	kid    string
	der    []byte          // the private key as stored: a recheck compares it
	jwk    jose.JSONWebKey // the public key, as published
	signer jose.Signer
}

type keyset struct {
	period int64 // the current key's rotation period
	keys   []*key
	cur    *key
	// next is the next period's key, read from the store and published:
	// at the rotation it signs before the store is asked again (at), so
	// that a store that is away then fails no token. nil in a set made
	// that way, which has no next key to publish yet.
	next *key
	// complete: the set was read from the store for its period (stale
	// otherwise: made from the previous period's, see at).
	complete bool
	// elsewhere are other rotation values' keys that may have signed a
	// token still valid (Keyring.retire), or the keys of the set held
	// before the clock was set back over rotations (keeping): published,
	// never signing.
	elsewhere []*key
	jwks      []byte
}

// ClockAllowance is how far behind ours a verifier's clock may be: a
// token's iat and nbf are that much before it was signed.
const ClockAllowance = 30 * time.Second

// RetryInterval is how long after a failed read of the keys in the
// background (a rotation, the keys in memory signing meanwhile) the store
// is left alone, so that a store that is away gets one such attempt per
// interval, not one per token.
const RetryInterval = 5 * time.Second

// RecheckInterval is how often the keyring checks, in the background,
// that the store still holds the key it signs with: `caddy sso keys
// rotate` replaces every key at once (Rotate), and a running instance then
// signs with, and publishes, only the new ones within this interval,
// without a reload (docs/operations.md, "Rotating the store's keys"). The
// check is a read transaction of one secret; the keys are read again only
// when it differs.
const RecheckInterval = time.Minute

// refreshTimeout bounds a read of the keys made in the background.
const refreshTimeout = 30 * time.Second

// ErrUnavailable is in the chain of the error of Sign, JWKS and KeyIDs
// when no key of the current period is in memory and the store, which
// would give it, failed: the caller answers as to any store outage (503,
// retry later), not as to a fault of its own.
var ErrUnavailable = errors.New("the store failed, and no signing key of the current period is in memory")

// Keyring holds the signing keys of one rotation schedule.
type Keyring struct {
	db       store.Store
	rotation time.Duration
	now      func() time.Time

	// mu guards what follows; it is never held across a store call, so
	// that a slow or failing store does not hold up the signing.
	mu      sync.Mutex
	set     *keyset
	loading *flight   // the read of the store in flight; nil when none is
	retryAt time.Time // after a failed read in the background: when to try again
	// checked is when the set in memory was last found to be the
	// store's (read, or rechecked): see RecheckInterval.
	checked time.Time

	// replaced counts the reads that found the key the keyring signed
	// with no longer published (Rotate retired it): see Replaced.
	replaced atomic.Int64
}

// Replaced counts the times the keyring found the key it had signed with
// retired from the store (Rotate): a caller that keeps signed tokens
// compares it with its value at signing, and signs again when it moved,
// since a token a retired key signed no longer verifies at an upstream
// that fetched the JWKS since. An atomic read, for every request.
func (k *Keyring) Replaced() int64 { return k.replaced.Load() }

// publishes reports whether the set publishes the key kid.
func (s *keyset) publishes(kid string) bool {
	has := func(k *key) bool { return k.kid == kid }
	return slices.ContainsFunc(s.keys, has) || slices.ContainsFunc(s.elsewhere, has)
}

// flight is a read of the store in flight; the callers with no key in
// memory wait for it, and share its failure rather than each trying.
type flight struct {
	done chan struct{}
	err  error // set before done is closed
}

// New returns the keyring of a rotation schedule over db, without reading
// the store: its first use does (Open does at once). now may be nil
// (time.Now); rotation <= 0 takes DefaultRotation.
func New(db store.Store, rotation time.Duration, now func() time.Time) *Keyring {
	if rotation <= 0 {
		rotation = DefaultRotation
	}
	if now == nil {
		now = time.Now
	}
	return &Keyring{db: db, rotation: rotation, now: now}
}

// Open loads (or creates) the keys of the current rotation period. now may
// be nil (time.Now); rotation <= 0 takes DefaultRotation.
func Open(ctx context.Context, db store.Store, rotation time.Duration, now func() time.Time) (*Keyring, error) {
	k := New(db, rotation, now)
	if _, err := k.current(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Keyring) secretName(period int64) string {
	return k.secretPrefix() + strconv.FormatInt(period, 10)
}

// secretRoot is what the names of every rotation's keys start with.
const secretRoot = "upstream-jwt-es256/"

// secretPrefix is what the names of this rotation's keys start with; keys
// of other rotation values (other routes sharing the store) differ in it.
func (k *Keyring) secretPrefix() string {
	return secretRoot + strconv.FormatInt(int64(k.rotation/time.Second), 10) + "/"
}

// retire deletes the keys no token still valid at now can name, of every
// rotation value: those of periods before the previous one, by their own
// rotation. A token lives at most a rotation period (ttl <= key_rotation),
// so none these keys signed is still valid, and none is published: the
// private keys only grew the store and every backup. For this rotation
// that is the keys before the previous period; for another (a route that
// shares the store, or a key_rotation changed since), the same rule by its
// own period: the keys of a value still in use elsewhere that its
// instances publish (previous, current and next) stay, and those of a
// value no longer in use go a period after its last one ended. A key
// another instance deleted meanwhile is no error.
//
// It returns the keys of other rotation values that may have signed a
// token still valid (their previous and current periods'), which this
// keyring publishes too: after a reload that changes key_rotation, the
// tokens signed a moment before still verify.
func (k *Keyring) retire(tx store.Tx, now time.Time) (elsewhere [][]byte, err error) {
	own := int64(k.rotation / time.Second)
	var old []string
	err = tx.ForEachSecret(func(name string, value []byte) error {
		rest, ok := strings.CutPrefix(name, secretRoot)
		if !ok {
			return nil
		}
		secs, period, ok := strings.Cut(rest, "/")
		if !ok {
			return nil
		}
		s, err1 := strconv.ParseInt(secs, 10, 64)
		p, err2 := strconv.ParseInt(period, 10, 64)
		if err1 != nil || err2 != nil || s <= 0 {
			return nil
		}
		switch cur := now.Unix() / s; {
		case p < cur-1:
			old = append(old, name)
		case s != own && p <= cur:
			elsewhere = append(elsewhere, bytes.Clone(value))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range old {
		if err := tx.DeleteSecret(name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return elsewhere, nil
}

// current returns the key set for now. At a rotation it signs with the
// key that was the next one, read from the store and published since, and
// reads the new set (the new next key, the deletion of old ones) in the
// background: no request waits for the store then, and none fails while
// it is away. Only when no key of the period is in memory (the first use,
// or a store away for a whole period) does the caller wait for the store,
// and get ErrUnavailable when it fails.
//
// A wall clock set back across a rotation (NTP stepping back a clock that
// ran ahead, a VM's clock fixed by hand) asks for a period older than the
// set held, which stays: it signs at once, never waiting for or looping on
// the store. A set one period newer publishes the key the instances whose
// clock is right sign with (its previous one), and they publish the key it
// signs with (their next one), so tokens in flight verify at either. A set
// two or more periods newer shares no key with them: the clock's period is
// then read in the background and signs once read, the held set's keys
// still published (keeping).
func (k *Keyring) current(ctx context.Context) (*keyset, error) {
	now := k.now()
	period := now.UnixNano() / int64(k.rotation)
	for {
		k.mu.Lock()
		if held := k.set; held != nil && period < held.period {
			if period < held.period-1 {
				k.readLater(ctx, now, period)
				k.mu.Unlock()
				return held, nil
			}
			period = held.period
		}
		if set := k.set.at(period); set != nil {
			k.set = set
			// A check "in the future" was made before the clock was set
			// back: stale, or rechecks would wait for the clock to catch
			// up. time.Now's monotonic reading already keeps Sub right
			// across a step; a clock given to New may have none.
			if since := now.Sub(k.checked); !set.complete || since >= RecheckInterval || since < 0 {
				k.readLater(ctx, now, period)
			}
			k.mu.Unlock()
			return set, nil
		}
		f := k.loading
		if f == nil {
			f = &flight{done: make(chan struct{})}
			k.loading = f
			k.mu.Unlock()
			k.load(ctx, now, period, f, false)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if f.err != nil {
				return nil, f.err
			}
			continue
		}
		k.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
	}
}

// readLater starts a read of period's set in the background, unless one
// is in flight or the last one failed less than RetryInterval ago. A
// retry time further off than RetryInterval was set before the clock was
// set back, and no longer holds: kept, it would keep the keyring on the
// set the clock ahead chose until the clock caught up (with a clock given
// to New that has no monotonic reading; time.Now's keeps Sub right across
// a step). k.mu is held.
func (k *Keyring) readLater(ctx context.Context, now time.Time, period int64) {
	if wait := k.retryAt.Sub(now); k.loading != nil || wait > 0 && wait <= RetryInterval {
		return
	}
	f := &flight{done: make(chan struct{})}
	k.loading = f
	// The read outlives the request that started it.
	go func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		k.load(ctx, now, period, f, true)
	}(ctx)
}

// keeping returns s publishing old's keys too, never signing with them.
func (s *keyset) keeping(old *keyset) *keyset {
	cp := *s
	cp.elsewhere = slices.Clip(cp.elsewhere)
	for _, kk := range append(slices.Clip(old.keys), old.elsewhere...) {
		if !cp.publishes(kk.kid) {
			cp.elsewhere = append(cp.elsewhere, kk)
		}
	}
	jwks, err := publish(append(slices.Clip(cp.keys), cp.elsewhere...))
	if err != nil {
		return s
	}
	cp.jwks = jwks
	return &cp
}

// at returns the key set for period: s itself, or, at the rotation, one
// made of s's current and next keys, the next one signing; nil when s has
// no key for period.
func (s *keyset) at(period int64) *keyset {
	switch {
	case s == nil:
		return nil
	case s.period == period:
		return s
	case s.period+1 == period && s.next != nil:
		set := &keyset{period: period, keys: []*key{s.cur, s.next}, cur: s.next, elsewhere: s.elsewhere}
		var err error
		if set.jwks, err = publish(append(slices.Clip(set.keys), set.elsewhere...)); err != nil {
			return nil
		}
		return set
	}
	return nil
}

// load reads the key set of period from the store and makes it the
// keyring's, or hands the failure to the callers waiting for f (not that
// of a caller that gave up: they try again), and after one in the
// background leaves the store alone for RetryInterval.
func (k *Keyring) load(ctx context.Context, now time.Time, period int64, f *flight, background bool) {
	k.mu.Lock()
	held := k.set
	k.mu.Unlock()
	var (
		set *keyset
		err error
	)
	if held == nil || !held.complete || held.period != period || k.changed(ctx, held) {
		set, err = k.read(ctx, now, period)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.loading = nil
	switch {
	case err == nil:
		k.retryAt = time.Time{}
		k.checked = now
		// A set older than the one held is one for a clock set back over
		// more than a rotation (current), if the clock still says so: it
		// signs, and the held set's keys stay published for the tokens
		// they signed. Any other older set is a read overtaken by a newer.
		back := set != nil && k.set != nil && set.period < k.set.period-1 &&
			set.period == k.now().UnixNano()/int64(k.rotation)
		if back {
			set = set.keeping(k.set)
		}
		if set != nil && (k.set == nil || set.period >= k.set.period || back) {
			if held != nil && held.cur != nil && !set.publishes(held.cur.kid) {
				k.replaced.Add(1)
			}
			k.set = set
		}
	case background:
		k.retryAt = now.Add(RetryInterval)
		f.err = err
	case ctx.Err() == nil:
		f.err = err
	}
	close(f.done)
}

// changed reports whether the store no longer holds the current and next
// keys of set as they are (Rotate replaced them), or could not say.
func (k *Keyring) changed(ctx context.Context, set *keyset) bool {
	if set.next == nil {
		return true
	}
	same := false
	_ = k.db.View(ctx, func(tx store.Tx) error {
		cur, err1 := tx.LoadOrStoreSecret(k.secretName(set.period), nil) // nil: only look
		next, err2 := tx.LoadOrStoreSecret(k.secretName(set.period+1), nil)
		same = err1 == nil && err2 == nil && bytes.Equal(cur, set.cur.der) && bytes.Equal(next, set.next.der)
		return nil
	})
	return !same
}

// read reads (or creates) the keys of the previous, current and next
// periods in one transaction, deleting the keys no valid token can name
// (retire).
func (k *Keyring) read(ctx context.Context, now time.Time, period int64) (*keyset, error) {
	// Generate outside the transaction (Update may run fn more than once);
	// LoadOrStoreSecret keeps whatever another instance stored first.
	fresh := make(map[int64][]byte, 2)
	for _, p := range []int64{period, period + 1} {
		der, err := newKeyDER()
		if err != nil {
			return nil, err
		}
		fresh[p] = der
	}
	var ders, elsewhere [][]byte
	err := k.db.Update(ctx, func(tx store.Tx) error {
		ders = ders[:0]
		prev, err := tx.LoadOrStoreSecret(k.secretName(period-1), nil)
		switch {
		case err == nil:
			ders = append(ders, prev)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		for _, p := range []int64{period, period + 1} {
			der, err := tx.LoadOrStoreSecret(k.secretName(p), fresh[p])
			if err != nil {
				return err
			}
			ders = append(ders, der)
		}
		// The previous period's key is still published; older ones go.
		elsewhere, err = k.retire(tx, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("upstream jwt keys: %w: %w", ErrUnavailable, err)
	}
	set := &keyset{period: period, complete: true}
	for i, der := range ders {
		kk, err := parseKey(der)
		if err != nil {
			return nil, err
		}
		set.keys = append(set.keys, kk)
		switch i {
		case len(ders) - 2:
			set.cur = kk
		case len(ders) - 1:
			set.next = kk
		}
	}
	for _, der := range elsewhere {
		kk, err := parseKey(der)
		if err != nil {
			return nil, err
		}
		set.elsewhere = append(set.elsewhere, kk)
	}
	if set.jwks, err = publish(append(slices.Clip(set.keys), set.elsewhere...)); err != nil {
		return nil, err
	}
	return set, nil
}

// newKeyDER makes a signing key, as stored.
func newKeyDER() ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKCS8PrivateKey(priv)
}

// Rotated is what Rotate did.
type Rotated struct {
	// Retired counts the keys deleted: none is published any more.
	Retired int `json:"retired"`
	// Made counts the fresh keys stored: the current and next period's of
	// each rotation value in use.
	Made int `json:"made"`
}

// Rotate retires every signing key in tx at once, of every rotation value
// (deleted, so no longer published in any JWKS: a token a leaked key
// signs stops verifying at an upstream that fetches the JWKS again on a
// key ID it does not know), and stores fresh keys for the current and
// next period of each rotation value in use (one with a key of its
// current or next period by its own rotation, as a running keyring keeps
// them). Running keyrings pick them up within RecheckInterval
// (docs/operations.md, "Rotating the store's keys").
//
// Its keys are made in tx: a P-256 key takes microseconds, and tx may run
// more than once (store.Store.Update), each run making its own.
func Rotate(tx store.Tx, now time.Time) (Rotated, error) {
	var (
		res   Rotated
		names []string
		inUse = map[int64]bool{}
	)
	err := tx.ForEachSecret(func(name string, _ []byte) error {
		rest, ok := strings.CutPrefix(name, secretRoot)
		if !ok {
			return nil
		}
		names = append(names, name)
		secs, period, _ := strings.Cut(rest, "/")
		s, err1 := strconv.ParseInt(secs, 10, 64)
		p, err2 := strconv.ParseInt(period, 10, 64)
		if err1 == nil && err2 == nil && s > 0 {
			if cur := now.Unix() / s; p == cur || p == cur+1 {
				inUse[s] = true
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for _, name := range names {
		if err := tx.DeleteSecret(name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
		res.Retired++
	}
	for _, s := range slices.Sorted(maps.Keys(inUse)) {
		k := &Keyring{rotation: time.Duration(s) * time.Second}
		for _, p := range []int64{now.Unix() / s, now.Unix()/s + 1} {
			der, err := newKeyDER()
			if err != nil {
				return res, err
			}
			if _, err := tx.LoadOrStoreSecret(k.secretName(p), der); err != nil {
				return res, err
			}
			res.Made++
		}
	}
	return res, nil
}

// parseKey makes a key of a stored private key, ready to sign.
func parseKey(der []byte) (*key, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("upstream jwt keys: %w", err)
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("upstream jwt keys: stored key is not ECDSA")
	}
	jwk := jose.JSONWebKey{Key: &priv.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp[:12])
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: jwk.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &key{kid: jwk.KeyID, der: der, jwk: jwk, signer: signer}, nil
}

// publish is the JWKS of keys.
func publish(keys []*key) ([]byte, error) {
	var pub jose.JSONWebKeySet
	for _, kk := range keys {
		pub.Keys = append(pub.Keys, kk.jwk)
	}
	return json.Marshal(pub)
}

// JWKS returns the public keys as a JSON Web Key Set: the previous,
// current and next period's (no next one yet right after a rotation, until
// the new set is read), and those of other rotation values that may have
// signed a token still valid (retire).
func (k *Keyring) JWKS(ctx context.Context) ([]byte, error) {
	set, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	return set.jwks, nil
}

// Union returns the public keys of several keyrings as one JSON Web Key
// Set: each one's JWKS, a key two of them publish listed once. The
// keyrings are the rotation schedules of the routes of one config, which
// any of its routes publishes, so that a route's tokens verify against the
// set whichever route answers the request for it (a stricter route inside
// a protected site signs, the outer one serves the endpoints). With one
// keyring it is that one's JWKS. It fails as JWKS does, when a keyring has
// no key of the current period in memory and the store failed.
func Union(ctx context.Context, rings ...*Keyring) ([]byte, error) {
	if len(rings) == 1 {
		return rings[0].JWKS(ctx)
	}
	var keys []*key
	seen := make(map[string]bool)
	for _, k := range rings {
		set, err := k.current(ctx)
		if err != nil {
			return nil, err
		}
		for _, kk := range append(slices.Clip(set.keys), set.elsewhere...) {
			if !seen[kk.kid] {
				seen[kk.kid] = true
				keys = append(keys, kk)
			}
		}
	}
	return publish(keys)
}

// Sign issues a token for subject with the identity claims, valid for ttl
// from now and at most until c.NotAfter. It returns the token and its
// expiry.
func (k *Keyring) Sign(ctx context.Context, issuer, audience, subject string, c Claims, ttl time.Duration) (string, time.Time, error) {
	set, err := k.current(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	now := k.now()
	exp := now.Add(ttl)
	if end := c.NotAfter.Truncate(time.Second); !c.NotAfter.IsZero() && end.Before(exp) {
		exp = end
		if !exp.After(now) {
			exp = now.Add(time.Second)
		}
	}
	// iat and nbf are backdated alike: a verifier whose clock is behind
	// ours refuses a token "issued in the future" (PyJWT does, without
	// leeway) as surely as one not yet valid.
	reg := jwt.Claims{
		Issuer:    issuer,
		Audience:  jwt.Audience{audience},
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now.Add(-ClockAllowance)),
		NotBefore: jwt.NewNumericDate(now.Add(-ClockAllowance)),
		Expiry:    jwt.NewNumericDate(exp),
	}
	if c.Groups == nil {
		c.Groups = []string{}
	}
	b := jwt.Signed(set.cur.signer).Claims(reg).Claims(c)
	if !c.AuthTime.IsZero() {
		b = b.Claims(authTime{jwt.NewNumericDate(c.AuthTime)})
	}
	tok, err := b.Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("upstream jwt: %w", err)
	}
	return tok, exp, nil
}

// KeyIDs returns the published key IDs, current one second (tests).
func (k *Keyring) KeyIDs(ctx context.Context) ([]string, error) {
	set, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(set.keys))
	for i, kk := range set.keys {
		ids[i] = kk.kid
	}
	return ids, nil
}
