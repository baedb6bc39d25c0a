package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer serves a JWK set that tests can change, counting fetches and
// optionally holding them until released.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetches atomic.Int32
	gate    chan struct{} // when non-nil, fetches wait for it to close
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		gate, keys := s.gate, s.keys
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...jose.JSONWebKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func rsaKey(t *testing.T, kid, alg string) (*rsa.PrivateKey, jose.JSONWebKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: alg, Use: "sig"}
}

func signJWT(t *testing.T, k *rsa.PrivateKey, kid string, alg jose.SignatureAlgorithm) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// startKeySet is a keySet on the JWKS at url whose clock reads now, set
// to t0 (a test moves it with now.Store).
func startKeySet(url string) (ks *keySet, now *atomic.Pointer[time.Time], t0 time.Time) {
	now = new(atomic.Pointer[time.Time])
	t0 = time.Unix(1_700_000_000, 0)
	now.Store(&t0)
	return newTestKeySet(url, now), now, t0
}

func newTestKeySet(url string, now *atomic.Pointer[time.Time]) *keySet {
	return &keySet{
		client:     http.DefaultClient,
		now:        func() time.Time { return *now.Load() },
		algs:       []jose.SignatureAlgorithm{jose.RS256, jose.PS256},
		minRefresh: 30 * time.Second,
		url:        url,
	}
}

// rotation is a key set that has verified tok, signed by oldKey, the one
// key (old) of its JWKS, in its one fetch at t0; newKey (next) is the key
// the IdP rotates to.
type rotation struct {
	ctx            context.Context
	ks             *keySet
	srv            *jwksServer
	now            *atomic.Pointer[time.Time]
	t0             time.Time
	tok            string
	oldKey, newKey *rsa.PrivateKey
	old, next      jose.JSONWebKey
}

// startRotation is a rotation from a key of oldKid to one of newKid (the
// same kid for an IdP that keeps it).
func startRotation(t *testing.T, oldKid, newKid string) *rotation {
	t.Helper()
	r := &rotation{ctx: context.Background()}
	r.oldKey, r.old = rsaKey(t, oldKid, "")
	r.newKey, r.next = rsaKey(t, newKid, "")
	r.srv = newJWKSServer(t, r.old)
	r.ks, r.now, r.t0 = startKeySet(r.srv.URL)
	r.tok = signJWT(t, r.oldKey, oldKid, jose.RS256)
	if _, err := r.ks.VerifySignature(r.ctx, r.tok); err != nil {
		t.Fatal(err)
	}
	return r
}

// at sets the key set's clock to d after t0, and returns that time.
func (r *rotation) at(d time.Duration) time.Time {
	t := r.t0.Add(d)
	r.now.Store(&t)
	return t
}

func TestKeySetConcurrentRefreshIsShared(t *testing.T) {
	r := startRotation(t, "k1", "k2")

	// Rotation: k2 appears; many verifications of k2 tokens arrive while the
	// one permitted fetch is in flight. All must wait for it and succeed.
	r.srv.set(r.old, r.next)
	r.at(time.Minute)
	gate := make(chan struct{})
	r.srv.mu.Lock()
	r.srv.gate = gate
	r.srv.mu.Unlock()
	tok := signJWT(t, r.newKey, "k2", jose.RS256)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = r.ks.VerifySignature(r.ctx, tok) })
	}
	time.Sleep(50 * time.Millisecond) // let them queue behind the fetch
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("verification %d: %v", i, err)
		}
	}
	if n := r.srv.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
}

func TestKeySetRejects(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		keys  func(t *testing.T) (*rsa.PrivateKey, []jose.JSONWebKey)
		alg   jose.SignatureAlgorithm
		kid   string
		match string
	}{
		{"key labelled for another alg", func(t *testing.T) (*rsa.PrivateKey, []jose.JSONWebKey) {
			k, j := rsaKey(t, "k1", "RS512")
			return k, []jose.JSONWebKey{j}
		}, jose.RS256, "k1", "no key in the JWKS verifies"},
		{"encryption key", func(t *testing.T) (*rsa.PrivateKey, []jose.JSONWebKey) {
			k, j := rsaKey(t, "k1", "")
			j.Use = "enc"
			return k, []jose.JSONWebKey{j}
		}, jose.RS256, "k1", "no usable signing key"},
		{"symmetric key published", func(t *testing.T) (*rsa.PrivateKey, []jose.JSONWebKey) {
			k, _ := rsaKey(t, "k1", "")
			return k, []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "k1"}}
		}, jose.RS256, "k1", "no usable signing key"},
		{"alg outside the allow-list", func(t *testing.T) (*rsa.PrivateKey, []jose.JSONWebKey) {
			k, j := rsaKey(t, "k1", "")
			return k, []jose.JSONWebKey{j}
		}, jose.RS512, "k1", "parsing JWS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, keys := tc.keys(t)
			srv := newJWKSServer(t, keys...)
			ks, _, _ := startKeySet(srv.URL)
			_, err := ks.VerifySignature(ctx, signJWT(t, k, tc.kid, tc.alg))
			if err == nil || !strings.Contains(err.Error(), tc.match) {
				t.Fatalf("VerifySignature = %v, want error containing %q", err, tc.match)
			}
		})
	}
}

// TestKeySetSelectsByKid: a token's kid selects the key that may verify
// it, as go-oidc's RemoteKeySet does: a token whose kid names one key (or
// none in the set) is not verified by another key of the set, even one
// that signed it, after the one fetch its unknown kid allows.
func TestKeySetSelectsByKid(t *testing.T) {
	k1, j1 := rsaKey(t, "k1", "")
	_, j2 := rsaKey(t, "k2", "")
	srv := newJWKSServer(t, j1, j2)
	ks, _, _ := startKeySet(srv.URL)
	ctx := context.Background()
	if _, err := ks.VerifySignature(ctx, signJWT(t, k1, "k1", jose.RS256)); err != nil {
		t.Fatalf("k1's token under its kid: %v", err)
	}
	for _, kid := range []string{"k2", "k3"} {
		if _, err := ks.VerifySignature(ctx, signJWT(t, k1, kid, jose.RS256)); err == nil {
			t.Errorf("k1's token under kid %q accepted", kid)
		}
	}
}

func TestKeySetDropsWithdrawnKeysAfterMaxAge(t *testing.T) {
	r := startRotation(t, "k1", "k2")
	r.srv.set(r.next) // k1 withdrawn, e.g. compromised
	r.at(keysMaxAge + time.Minute)
	r.ks.VerifySignature(r.ctx, r.tok) // still cached; triggers the refresh
	r.ks.bg.wg.Wait()                  // which runs in the background
	if _, err := r.ks.VerifySignature(r.ctx, r.tok); err == nil {
		t.Fatal("a key withdrawn from the JWKS is still accepted after keysMaxAge")
	}
	if n := r.srv.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
}

// A max-age refresh that fails (the JWKS away at that moment) does not
// reset the keys' age: the next verification after the rate limit fetches
// again, so a withdrawn key is not trusted for another keysMaxAge.
func TestKeySetRetriesAFailedMaxAgeRefresh(t *testing.T) {
	r := startRotation(t, "k1", "k2")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	r.ks.setURL(down.URL)
	aged := keysMaxAge + time.Minute
	r.at(aged)
	if _, err := r.ks.VerifySignature(r.ctx, r.tok); err != nil {
		t.Fatalf("the cached key while its refresh fails: %v, want it accepted", err)
	}
	r.ks.bg.wg.Wait() // the refresh runs in the background
	r.srv.set(r.next) // back, with k1 withdrawn
	r.ks.setURL(r.srv.URL)
	back := r.at(aged + r.ks.minRefresh + time.Second)
	r.ks.VerifySignature(r.ctx, r.tok) // cached; the retry fetches
	r.ks.bg.wg.Wait()
	if _, err := r.ks.VerifySignature(r.ctx, r.tok); err == nil {
		t.Fatalf("withdrawn key accepted %v after the last successful fetch (%d fetches): the failed refresh reset its age", back.Sub(r.t0), r.srv.fetches.Load())
	}
}

// An IdP that rotates its key but keeps the kid: the first token under the
// new key fetches the JWKS again (once per minRefresh), and is accepted.
func TestKeySetRefetchesWhenAKnownKidStopsVerifying(t *testing.T) {
	r := startRotation(t, "default", "default")
	r.srv.set(r.next)
	rotated := signJWT(t, r.newKey, "default", jose.RS256)
	// Within minRefresh of the first fetch: no new fetch, refused, and
	// as final as a forged token (a known kid failing is no new key
	// waiting to be fetched: not errRefreshLimited, CodeSigningKeyPending).
	if _, err := r.ks.VerifySignature(r.ctx, rotated); err == nil || !strings.Contains(err.Error(), "signature does not verify") || errors.Is(err, errRefreshLimited) {
		t.Fatalf("VerifySignature within minRefresh = %v, want \"signature does not verify\", not errRefreshLimited", err)
	}
	if n := r.srv.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches within minRefresh, want 1", n)
	}
	r.at(time.Minute)
	if _, err := r.ks.VerifySignature(r.ctx, rotated); err != nil {
		t.Fatalf("token under the rotated key with the same kid: %v", err)
	}
	if n := r.srv.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
	// The old key is gone from the set: its tokens no longer verify.
	if _, err := r.ks.VerifySignature(r.ctx, r.tok); err == nil {
		t.Error("a token under the replaced key is still accepted")
	}
}

// A JWKS that cannot be fetched is the IdP's outage, not a forged token:
// the error says so (errKeysUnavailable), also while the rate limit keeps
// the next fetch back, and the first fetch after the outage succeeds.
func TestKeySetUnavailableJWKS(t *testing.T) {
	k1, j1 := rsaKey(t, "k1", "")
	srv := newJWKSServer(t, j1)
	ks, now, t0 := startKeySet(srv.URL)
	ctx := context.Background()
	tok := signJWT(t, k1, "k1", jose.RS256)
	srv.Close() // the IdP is down
	for _, when := range []string{"first fetch", "within minRefresh"} {
		if _, err := ks.VerifySignature(ctx, tok); !errors.Is(err, errKeysUnavailable) {
			t.Fatalf("%s: VerifySignature = %v, want errKeysUnavailable", when, err)
		}
	}
	up := newJWKSServer(t, j1)
	ks.setURL(up.URL)
	t1 := t0.Add(time.Minute)
	now.Store(&t1)
	if _, err := ks.VerifySignature(ctx, tok); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// TestKeySetRefreshLimitBoundary: minRefresh (JWKSRefreshInterval) is the
// least time between two fetches, inclusive: a token under a new kid a
// moment short of it after the last fetch is refused without a fetch, as
// pending (keysPendingError, naming the kid and the time left, which a
// back-channel logout answers as Retry-After), and exactly minRefresh
// after it the JWKS is fetched and the token accepted.
func TestKeySetRefreshLimitBoundary(t *testing.T) {
	r := startRotation(t, "k1", "k2")
	r.srv.set(r.old, r.next)
	tok := signJWT(t, r.newKey, "k2", jose.RS256)
	r.at(r.ks.minRefresh - time.Nanosecond)
	var pending *keysPendingError
	if _, err := r.ks.VerifySignature(r.ctx, tok); !errors.As(err, &pending) || !errors.Is(err, errRefreshLimited) ||
		pending.kid != "k2" || pending.retryIn != time.Nanosecond {
		t.Fatalf("a moment short of minRefresh: %v, want a keysPendingError for kid k2, 1ns left", err)
	}
	r.at(r.ks.minRefresh)
	if _, err := r.ks.VerifySignature(r.ctx, tok); err != nil {
		t.Fatalf("exactly minRefresh after the last fetch: %v, want the new key fetched", err)
	}
	if n := r.srv.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
}
