package upstreamjwt

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestRotation: keys persist across restarts, rotate every period, and a
// token signed before a rotation still verifies with the JWKS after it.
func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	const day = 24 * time.Hour

	k, err := Open(ctx, db, day, clock)
	if err != nil {
		t.Fatal(err)
	}
	ids0, _ := k.KeyIDs(ctx)
	if len(ids0) != 2 { // current and next: no previous yet
		t.Fatalf("keys at start: %v", ids0)
	}
	again, _ := Open(ctx, db, day, clock)
	if ids, _ := again.KeyIDs(ctx); !slices.Equal(ids, ids0) {
		t.Fatalf("keys not persisted: %v vs %v", ids, ids0)
	}
	tok, exp, err := k.Sign(ctx, "https://app.example.com", "https://app.example.com", "u1", Claims{Email: "a@example.com"}, 5*time.Minute)
	if err != nil || !exp.Equal(now.Add(5*time.Minute)) {
		t.Fatal(err, exp)
	}

	now = now.Add(day) // rotate
	ids1, _ := k.KeyIDs(ctx)
	if len(ids1) != 3 || ids1[0] != ids0[0] || ids1[1] != ids0[1] {
		t.Fatalf("after rotation: %v (before %v)", ids1, ids0)
	}
	raw, err := k.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Headers[0].KeyID != ids0[0] {
		t.Fatalf("signed with %q, want the then-current %q", parsed.Headers[0].KeyID, ids0[0])
	}
	var c jwt.Claims
	if err := parsed.Claims(&set, &c); err != nil || c.Subject != "u1" {
		t.Fatalf("old token with new JWKS: %v %+v", err, c)
	}
	tok2, _, _ := k.Sign(ctx, "i", "a", "u1", Claims{}, time.Minute)
	if p, _ := jwt.ParseSigned(tok2, []jose.SignatureAlgorithm{jose.ES256}); p.Headers[0].KeyID != ids1[1] {
		t.Fatalf("new token signed with %q, want %q", p.Headers[0].KeyID, ids1[1])
	}
}

// TestClockBehind: a verifier whose clock is up to ClockAllowance behind
// ours accepts a fresh token without leeway: neither issued in the future
// (iat) nor not yet valid (nbf).
func TestClockBehind(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	k, err := Open(ctx, db, DefaultRotation, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := k.Sign(ctx, "https://app.example.com", "https://app.example.com", "u1", Claims{}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	for _, behind := range []time.Duration{time.Second, 10 * time.Second, ClockAllowance} {
		if err := c.ValidateWithLeeway(jwt.Expected{Time: now.Add(-behind)}, 0); err != nil {
			t.Errorf("a verifier %v behind, without leeway: %v", behind, err)
		}
	}
}
