// Package upstreamjwt signs short-lived ES256 identity tokens for the apps
// behind the gateway and publishes their verification keys as a JWKS. The
// signing keys live in the store, one per rotation period: the current one
// signs, the previous and the next one are published too, so that verifiers
// holding a cached JWKS keep working across a rotation. It knows nothing of
// Caddy.
package upstreamjwt

import (
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
	"strconv"
	"strings"
	"sync"
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
}

type key struct {
	kid    string
	priv   *ecdsa.PrivateKey
	signer jose.Signer
}

type keyset struct {
	period int64 // the current key's rotation period
	keys   []*key
	cur    *key
	jwks   []byte
}

// ClockAllowance is how far behind ours a verifier's clock may be: a
// token's iat and nbf are that much before it was signed.
const ClockAllowance = 30 * time.Second

// Keyring holds the signing keys of one rotation schedule.
type Keyring struct {
	db       store.Store
	rotation time.Duration
	now      func() time.Time

	mu  sync.Mutex
	set *keyset
}

// Open loads (or creates) the keys of the current rotation period. now may
// be nil (time.Now); rotation <= 0 takes DefaultRotation.
func Open(ctx context.Context, db store.Store, rotation time.Duration, now func() time.Time) (*Keyring, error) {
	if rotation <= 0 {
		rotation = DefaultRotation
	}
	if now == nil {
		now = time.Now
	}
	k := &Keyring{db: db, rotation: rotation, now: now}
	if _, err := k.current(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Keyring) secretName(period int64) string {
	return k.secretPrefix() + strconv.FormatInt(period, 10)
}

// secretPrefix is what the names of this rotation's keys start with; keys
// of other rotation values (other routes sharing the store) differ in it.
func (k *Keyring) secretPrefix() string {
	return "upstream-jwt-es256/" + strconv.FormatInt(int64(k.rotation/time.Second), 10) + "/"
}

// retire deletes this rotation's keys of periods before before: no token
// they signed is still valid (a token lives at most a rotation period, as
// ttl <= key_rotation), and none is published, so the private keys only
// grew the store and every backup. Keys of other rotation values are
// left alone. A key another instance deleted meanwhile is no error.
func (k *Keyring) retire(tx store.Tx, before int64) error {
	prefix := k.secretPrefix()
	var old []string
	err := tx.ForEachSecret(func(name string, _ []byte) error {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			return nil
		}
		if p, err := strconv.ParseInt(rest, 10, 64); err == nil && p < before {
			old = append(old, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range old {
		if err := tx.DeleteSecret(name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// current returns the key set for now, loading the next period's when the
// rotation time has passed, and deleting this rotation's keys older than
// the previous period's in the same transaction.
func (k *Keyring) current(ctx context.Context) (*keyset, error) {
	period := k.now().UnixNano() / int64(k.rotation)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set != nil && k.set.period == period {
		return k.set, nil
	}
	// Generate outside the transaction (Update may run fn more than once);
	// LoadOrStoreSecret keeps whatever another instance stored first.
	fresh := make(map[int64][]byte, 2)
	for _, p := range []int64{period, period + 1} {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		fresh[p] = der
	}
	var ders [][]byte
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
		return k.retire(tx, period-1)
	})
	if err != nil {
		return nil, fmt.Errorf("upstream jwt keys: %w", err)
	}
	set := &keyset{period: period}
	var pub jose.JSONWebKeySet
	for i, der := range ders {
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
		kk := &key{kid: jwk.KeyID, priv: priv}
		set.keys = append(set.keys, kk)
		pub.Keys = append(pub.Keys, jwk)
		if i == len(ders)-2 { // the current period's key
			set.cur = kk
			kk.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: jwk.KeyID}},
				(&jose.SignerOptions{}).WithType("JWT"))
			if err != nil {
				return nil, err
			}
		}
	}
	if set.jwks, err = json.Marshal(pub); err != nil {
		return nil, err
	}
	k.set = set
	return set, nil
}

// JWKS returns the public keys (previous, current and next) as a JSON Web
// Key Set.
func (k *Keyring) JWKS(ctx context.Context) ([]byte, error) {
	set, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	return set.jwks, nil
}

// Sign issues a token for subject with the identity claims, valid for ttl
// from now. It returns the token and its expiry.
func (k *Keyring) Sign(ctx context.Context, issuer, audience, subject string, c Claims, ttl time.Duration) (string, time.Time, error) {
	set, err := k.current(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	now := k.now()
	exp := now.Add(ttl)
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
	tok, err := jwt.Signed(set.cur.signer).Claims(reg).Claims(c).Serialize()
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
