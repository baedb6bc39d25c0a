package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// keysMaxAge is how long fetched keys are trusted without a new fetch, so a
// key the IdP withdraws (compromise) stops being accepted within a day even
// if no unknown kid ever shows up.
const keysMaxAge = 24 * time.Hour

// errRefreshLimited marks a verification refused only because the JWKS
// was fetched too recently to fetch again (keySet.minRefresh): see
// keysPendingError.
var errRefreshLimited = errors.New("the JWKS was fetched too recently to fetch again")

// keysPendingError is a token under a kid the cached keys lack, refused
// only because the JWKS was fetched less than minRefresh ago: an IdP that
// publishes a new key as it starts signing with it (Keycloak's rotation)
// meets it when anyone's token, a forged one too, spent the fetch just
// before. Not the token's fault, so not answered as forged: the caller
// says to try again in retryIn, when the next fetch is allowed
// (CodeSigningKeyPending; a back-channel logout 503 with Retry-After).
type keysPendingError struct {
	kid     string
	retryIn time.Duration
}

func (e *keysPendingError) Error() string {
	return fmt.Sprintf("signing key %q is not in the JWKS fetched last, which may be fetched again in %v", e.kid, e.retryIn)
}

func (e *keysPendingError) Unwrap() error { return errRefreshLimited }

// errKeysUnavailable marks a verification that failed because the IdP's
// JWKS could not be fetched, not because of the token: the caller answers
// by fetchFailed's rule, with the fetch's error wrapped for it
// (idp_unavailable, or idp_misconfigured for a certificate this host does
// not trust; a back-channel logout 500, which the IdP retries) rather
// than refusing the token as forged.
var errKeysUnavailable = errors.New("the IdP's signing keys (JWKS) could not be fetched")

// keySet implements go-oidc's oidc.KeySet over the IdP's jwks_uri. It
// differs from oidc.RemoteKeySet in one way that matters: fetches triggered
// by a token no cached key verifies are rate-limited to one per minRefresh,
// because the token is chosen by whoever made it.
type keySet struct {
	client     *http.Client
	now        func() time.Time
	algs       []jose.SignatureAlgorithm
	secret     []byte // HMAC key (the client secret), only when HS* is allowed
	minRefresh time.Duration
	log        *refreshLog // the background refreshes that failed

	fetchMu sync.Mutex // one fetch at a time
	bg      background // the refresh of keys past keysMaxAge

	mu      sync.Mutex // guards the fields below
	url     string
	keys    []jose.JSONWebKey
	fetched time.Time // last fetch attempt, successful or not: the rate limit
	gotKeys time.Time // last successful fetch: the keys' age (keysMaxAge)
	failed  error     // why the last fetch attempt failed; nil after a success
	gen     uint64    // incremented by every successful fetch
}

// setURL is called by discovery with the current jwks_uri.
func (k *keySet) setURL(u string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.url = u
}

func (k *keySet) snapshot() ([]jose.JSONWebKey, uint64, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.gen, k.gotKeys
}

var _ oidc.KeySet = (*keySet)(nil)

// VerifySignature implements oidc.KeySet: it parses raw with the algorithm
// allow-list (which excludes "none") and verifies it.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := k.parse(raw)
	if err != nil {
		return nil, err
	}
	return k.verify(ctx, jws)
}

// parse parses a compact JWS, refusing any algorithm not in the allow-list.
func (k *keySet) parse(raw string) (*jose.JSONWebSignature, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("parsing JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("JWS must have exactly one signature")
	}
	return jws, nil
}

// verify checks the signature of a JWS from parse and returns its payload.
func (k *keySet) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	var err error
	h := jws.Signatures[0].Header
	if strings.HasPrefix(h.Algorithm, "HS") {
		// Only the client secret can key an HMAC: never a JWKS key, or an
		// RSA public key would become a shared secret.
		if len(k.secret) == 0 {
			return nil, fmt.Errorf("algorithm %s not allowed", h.Algorithm)
		}
		return jws.Verify(k.secret)
	}

	keys, gen, got := k.snapshot()
	if payload, ok := verifyWith(jws, keys, h.KeyID, h.Algorithm); ok {
		// Aged from the last fetch that succeeded: a failed one (an IdP
		// blip at that moment) must not trust a key withdrawn meanwhile
		// for another keysMaxAge; refresh's rate limit spaces the retries.
		// In the background: the token verified, and the request that
		// brought it must not wait up to the client's timeout for an IdP
		// that hangs.
		if !got.IsZero() && k.now().Sub(got) > keysMaxAge {
			k.bg.run(func(ctx context.Context) {
				// The cached keys still verified, and go on doing so:
				// only the log shows that the IdP's current keys, and
				// the withdrawal of one, are not taken up. A refresh
				// held back by the rate limit is not a failure.
				if _, err := k.refresh(ctx, gen); err != nil && !errors.Is(err, errRefreshLimited) {
					k.log.failed(ctx, "oidc jwks refresh failed; keeping the last good keys", err)
				}
			})
		}
		return payload, nil
	}
	// An unknown kid, or a known one that does not verify: some IdPs
	// replace the key behind a fixed kid ("default", "1") when they
	// rotate, so both fetch again, within the same rate limit.
	known := h.KeyID != "" && hasKeyID(keys, h.KeyID)
	// The fetch outlives a cancelled request: its result serves every
	// caller, and the client's timeout still bounds it.
	keys, err = k.refresh(context.WithoutCancel(ctx), gen)
	if pending := (*keysPendingError)(nil); errors.As(err, &pending) {
		if known {
			// A kid the keys have that does not verify: final, as
			// forged, whatever a fetch might bring.
			return nil, errors.New("signature does not verify")
		}
		pending.kid = h.KeyID
	}
	if err != nil {
		return nil, err
	}
	if payload, ok := verifyWith(jws, keys, h.KeyID, h.Algorithm); ok {
		return payload, nil
	}
	return nil, fmt.Errorf("no key in the JWKS verifies the signature (kid %q)", h.KeyID)
}

func hasKeyID(keys []jose.JSONWebKey, kid string) bool {
	for _, key := range keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) ([]byte, bool) {
	for _, key := range keys {
		if (kid != "" && key.KeyID != kid) || (key.Algorithm != "" && key.Algorithm != alg) {
			continue
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// refresh fetches the JWKS unless another caller did since gen was read
// (then its keys are returned), and at most once per minRefresh. ctx
// bounds the fetch: a caller that waits passes one without cancellation
// (context.WithoutCancel), the background refresh its own, which
// Provider.Close cancels.
func (k *keySet) refresh(ctx context.Context, gen uint64) ([]jose.JSONWebKey, error) {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	now := k.now()
	k.mu.Lock()
	if k.gen != gen {
		keys := k.keys
		k.mu.Unlock()
		return keys, nil
	}
	if !k.fetched.IsZero() && now.Sub(k.fetched) < k.minRefresh {
		failed, next := k.failed, k.fetched.Add(k.minRefresh)
		k.mu.Unlock()
		if failed != nil {
			// Still within the limit after a failed fetch: the keys
			// are as unavailable as they were then.
			return nil, fmt.Errorf("%w: %w", errKeysUnavailable, failed)
		}
		return nil, &keysPendingError{retryIn: next.Sub(now)}
	}
	url := k.url
	if url == "" {
		k.mu.Unlock()
		return nil, fmt.Errorf("%w: jwks_uri unknown: discovery has not succeeded", errKeysUnavailable)
	}
	k.fetched = now
	k.mu.Unlock()

	keys, err := fetchJWKS(ctx, k.client, url)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failed = err
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, err)
	}
	k.keys, k.gen, k.gotKeys = keys, k.gen+1, now
	return keys, nil
}

// fetchJWKS fetches a JWK set, keeping the public signing keys it can use
// and skipping the rest (RFC 7517 5: unknown key types are ignored, not
// fatal), as IdPs list keys of kinds a client may not know.
func fetchJWKS(ctx context.Context, client *http.Client, url string) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, client, url, &raw); err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(raw.Keys))
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		// Valid is false for symmetric keys: a published one would let
		// anyone sign.
		if err := key.UnmarshalJSON(r); err != nil || !key.Valid() || (key.Use != "" && key.Use != "sig") {
			continue
		}
		pub := key.Public()
		if !pub.Valid() {
			continue
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("fetching JWKS: no usable signing key")
	}
	return keys, nil
}
