package oidc

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestIDTokenHMACKeyedWithThePublicKeyIsRefused is the classic algorithm
// confusion: with RS256 and HS256 both allowed, an attacker takes the
// IdP's RSA public key from its JWKS and uses its bytes, as PEM or DER, as
// the HMAC secret of an HS256 token. Only the client secret may key an
// HMAC (keySet.verify), so each such token is refused with
// CodeIDTokenSignature, whether the JWKS is cached yet or not, while an
// HS256 token keyed with the client secret and an RS256 token signed with
// the key pass.
func TestIDTokenHMACKeyedWithThePublicKeyIsRefused(t *testing.T) {
	const (
		issuer   = "https://idp.example"
		clientID = "client-1"
		secret   = "a-client-secret-of-at-least-32-bytes!"
		nonce    = "n-0S6_WzA2Mj"
	)
	rsaPriv, jwk := rsaKey(t, "k1", "")
	srv := newJWKSServer(t, jwk)

	der, err := x509.MarshalPKIXPublicKey(&rsaPriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemPKIX := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := x509.MarshalPKCS1PublicKey(&rsaPriv.PublicKey)
	pemPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})
	jwkJSON, err := json.Marshal(jwk)
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss": issuer, "aud": clientID, "sub": "sub-1", "nonce": nonce,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(alg jose.SignatureAlgorithm, key any, kid string) string {
		t.Helper()
		opts := &jose.SignerOptions{}
		if kid != "" {
			opts = opts.WithHeader("kid", kid)
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts.WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := s.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	p, err := New(Config{Name: "test", Issuer: issuer, ClientID: clientID, ClientSecret: secret,
		Algorithms: []string{"RS256", "HS256"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.keys.secret) == 0 {
		t.Fatal("HS256 allowed, yet the key set holds no client secret")
	}
	// As discovery would, with the IdP's jwks_uri.
	p.keys.setURL(srv.URL)
	ctx := context.Background()

	forged := map[string][]byte{
		"PEM (PKIX)":                  pemPKIX,
		"PEM (PKIX) without newline":  []byte(strings.TrimSuffix(string(pemPKIX), "\n")),
		"DER (PKIX)":                  der,
		"PEM (PKCS #1)":               pemPKCS1,
		"DER (PKCS #1)":               pkcs1,
		"the JWK as published (JSON)": jwkJSON,
	}
	refuseAll := func(when string) {
		t.Helper()
		for name, key := range forged {
			for _, kid := range []string{"", "k1"} {
				_, _, err := p.verifyIDToken(ctx, sign(jose.HS256, key, kid), nonce, "", "")
				if got := idp.ErrorCode(err, "accepted"); got != CodeIDTokenSignature {
					t.Errorf("%s: HS256 keyed with the RSA public key as %s (kid %q): %s (%v), want %s",
						when, name, kid, got, err, CodeIDTokenSignature)
				}
			}
		}
	}

	// Before any JWKS fetch.
	refuseAll("JWKS not fetched")

	// The genuine tokens pass: the client secret's HMAC, and the RSA
	// signature (which fetches and caches the JWKS).
	if _, sub, err := p.verifyIDToken(ctx, sign(jose.HS256, []byte(secret), ""), nonce, "", ""); err != nil || sub != "sub-1" {
		t.Fatalf("HS256 keyed with the client secret: sub %q, %v", sub, err)
	}
	if _, sub, err := p.verifyIDToken(ctx, sign(jose.RS256, rsaPriv, "k1"), nonce, "", ""); err != nil || sub != "sub-1" {
		t.Fatalf("RS256 signed with the JWKS key: sub %q, %v", sub, err)
	}
	if keys, _, _ := p.keys.snapshot(); len(keys) != 1 {
		t.Fatalf("the JWKS was not cached: %d keys", len(keys))
	}

	// With the public key in the cache.
	refuseAll("JWKS cached")
}
