package oidc

import "testing"

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
