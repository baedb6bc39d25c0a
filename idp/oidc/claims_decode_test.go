package oidc

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"testing"
)

// TestDecodeClaimsOneObject: a token's payload is one JSON object (RFC 7519
// 7.2). Every signed payload (ID token, logout token, userinfo JWT, the
// refresh's ID token) goes through decodeClaims, so a payload with a
// second object after the first ({"sub":"alice"}{"sub":"mallory"}) is
// refused there, not read as its first object's claims.
func TestDecodeClaimsOneObject(t *testing.T) {
	for _, tc := range []struct {
		payload string
		ok      bool
	}{
		{`{"sub":"alice"}`, true},
		{" {\"sub\":\"alice\"} \n", true},
		{`{"sub":"alice"}{"sub":"mallory"}`, false},
		{`{"sub":"alice"} and more`, false},
		{`{"sub":"alice"}]`, false},
		{`null`, false},
		{`["sub"]`, false},
		{``, false},
	} {
		claims, err := decodeClaims([]byte(tc.payload))
		if tc.ok && (err != nil || claims["sub"] != "alice") {
			t.Errorf("%q: %v, %v; want the claims", tc.payload, claims, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%q: accepted as %v", tc.payload, claims)
		}
	}
}

// TestCheckHalfHashPerAlgorithm: at_hash and c_hash are the left half of
// the value's hash under the ID token's algorithm (OpenID Connect Core
// 3.1.3.6): SHA-256 for *256, SHA-384 for *384, SHA-512 for *512 and for
// EdDSA (Ed25519, as go-oidc hashes it). Each family's own half matches,
// another family's half of the same value does not, and an algorithm with
// no hash (none) matches nothing.
func TestCheckHalfHashPerAlgorithm(t *testing.T) {
	const value = "an-access-token"
	half := func(sum []byte) string { return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]) }
	s256, s384, s512 := sha256.Sum256([]byte(value)), sha512.Sum384([]byte(value)), sha512.Sum512([]byte(value))
	h256, h384, h512 := half(s256[:]), half(s384[:]), half(s512[:])
	for _, tc := range []struct {
		alg, right string
	}{
		{"RS256", h256}, {"PS256", h256}, {"ES256", h256}, {"HS256", h256},
		{"RS384", h384}, {"PS384", h384}, {"ES384", h384}, {"HS384", h384},
		{"RS512", h512}, {"PS512", h512}, {"ES512", h512}, {"HS512", h512},
		{"EdDSA", h512},
	} {
		if err := checkHalfHash(tc.alg, "at_hash", tc.right, value); err != nil {
			t.Errorf("%s: its own half hash refused: %v", tc.alg, err)
		}
		for _, wrong := range []string{h256, h384, h512} {
			if wrong != tc.right && checkHalfHash(tc.alg, "at_hash", wrong, value) == nil {
				t.Errorf("%s: another algorithm's half hash %q accepted", tc.alg, wrong)
			}
		}
	}
	if err := checkHalfHash("none", "at_hash", h256, value); err == nil {
		t.Error("alg none: a half hash accepted")
	}
}
