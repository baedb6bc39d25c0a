package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
)

// TestProbeUsableKeys: a JWKS key counts for an allow-list only when it
// can verify one of its algorithms as sign-in verifies (keySet): its type
// fits the algorithm, an EC key's curve is the algorithm's, and an alg
// the key names is that algorithm. KeysErr reports a JWKS without one,
// unless an HS* algorithm, which needs no JWKS key, is allowed.
func TestProbeUsableKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var keys []jose.JSONWebKey
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" {
			b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
			w.Write(b)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": "http://" + r.Host, "authorization_endpoint": "http://" + r.Host + "/a",
			"token_endpoint": "http://" + r.Host + "/t", "jwks_uri": "http://" + r.Host + "/jwks"})
	}))
	defer srv.Close()
	rsaJWK := jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r", Use: "sig"}
	rs256Only := jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r256", Algorithm: "RS256", Use: "sig"}
	p384JWK := jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "e", Use: "sig"}
	edJWK := jose.JSONWebKey{Key: edPub, KeyID: "ed", Use: "sig"}
	for _, tc := range []struct {
		name    string
		keys    []jose.JSONWebKey
		allowed []string
		want    int
		hmac    bool
		types   []string
	}{
		{"RSA, the default list", []jose.JSONWebKey{rsaJWK}, nil, 1, false, []string{"RSA"}},
		{"RSA for ES256", []jose.JSONWebKey{rsaJWK}, []string{"ES256"}, 0, false, []string{"RSA"}},
		{"RSA for PS512", []jose.JSONWebKey{rsaJWK}, []string{"PS512"}, 1, false, nil},
		{"an RS256 key for PS256", []jose.JSONWebKey{rs256Only}, []string{"PS256"}, 0, false, []string{"RSA (alg RS256)"}},
		{"P-384 for ES256", []jose.JSONWebKey{p384JWK}, []string{"ES256"}, 0, false, []string{"EC P-384"}},
		{"P-384 for ES384", []jose.JSONWebKey{p384JWK}, []string{"ES256", "ES384"}, 1, false, nil},
		{"Ed25519 for EdDSA", []jose.JSONWebKey{edJWK, rsaJWK}, []string{"EdDSA"}, 1, false, []string{"OKP Ed25519", "RSA"}},
		{"Ed25519 for RS256", []jose.JSONWebKey{edJWK}, []string{"RS256"}, 0, false, nil},
		{"HS256 allowed", []jose.JSONWebKey{p384JWK}, []string{"HS256"}, 0, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys = tc.keys
			r, err := oidc.Probe(context.Background(), srv.Client(), srv.URL)
			if err != nil || r.JWKSErr != nil {
				t.Fatal(err, r.JWKSErr)
			}
			if n := r.UsableKeys(tc.allowed); n != tc.want {
				t.Errorf("UsableKeys(%v) = %d, want %d", tc.allowed, n, tc.want)
			}
			// No sign-in can verify a token: no usable key, and no HS*
			// algorithm, which the client secret keys.
			if err := r.KeysErr(tc.allowed); (err != nil) != (tc.want == 0 && !tc.hmac) {
				t.Errorf("KeysErr(%v) = %v", tc.allowed, err)
			}
			if tc.types != nil && !slices.Equal(r.KeyTypes(), tc.types) {
				t.Errorf("KeyTypes = %q, want %q", r.KeyTypes(), tc.types)
			}
		})
	}
}
