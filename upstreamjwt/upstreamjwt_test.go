package upstreamjwt

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// verifyWithJWKS verifies tok with the keyring's published key set, and
// returns its claims and the kid it was signed with.
func verifyWithJWKS(t *testing.T, k *Keyring, tok string) (jwt.Claims, string, error) {
	t.Helper()
	raw, err := k.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set := publicKeySet(t, raw)
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	err = parsed.Claims(&set, &c)
	return c, parsed.Headers[0].KeyID, err
}

// publicKeySet reads a published key set, which must hold public keys
// only: anyone may fetch it, and a private key there would let them sign
// identity tokens every app behind the gateway trusts.
func publicKeySet(t *testing.T, raw []byte) jose.JSONWebKeySet {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("the key set publishes a private key (kid %s)", k.KeyID)
		}
	}
	return set
}

// TestRotation: keys persist across restarts, rotate every period, and a
// token signed before a rotation still verifies with the JWKS after it.
func TestRotation(t *testing.T) {
	db := backendtest.OpenBolt(t)
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
	settle(t, k)
	ids1, _ := k.KeyIDs(ctx)
	if len(ids1) != 3 || ids1[0] != ids0[0] || ids1[1] != ids0[1] {
		t.Fatalf("after rotation: %v (before %v)", ids1, ids0)
	}
	c, kid, err := verifyWithJWKS(t, k, tok)
	if kid != ids0[0] {
		t.Fatalf("signed with %q, want the then-current %q", kid, ids0[0])
	}
	if err != nil || c.Subject != "u1" {
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
	db := backendtest.OpenBolt(t)
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

// secretNames lists the store's secrets that start with prefix.
func secretNames(t *testing.T, db store.Store, prefix string) []string {
	t.Helper()
	var names []string
	err := db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachSecret(func(name string, _ []byte) error {
			if strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestOldKeysDeleted: as the periods go by, the store keeps only the
// previous, current and next keys of a rotation: older private keys are
// deleted (they would pile up in the store and every backup), while the
// keys of another rotation value sharing the store stay, and a token
// signed with the now previous key still verifies.
func TestOldKeysDeleted(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	start := time.Unix(1_800_000_000, 0)
	now := start
	clock := func() time.Time { return now }
	const hour = time.Hour

	other, err := Open(ctx, db, 24*hour, clock) // another route's rotation
	if err != nil {
		t.Fatal(err)
	}
	otherKeys := secretNames(t, db, "upstream-jwt-es256/86400/")
	if len(otherKeys) != 2 {
		t.Fatalf("other rotation's keys: %v", otherKeys)
	}
	// A key of a period long gone, left by an instance that ran then.
	stale := "upstream-jwt-es256/3600/" + strconv.FormatInt(start.Unix()/3600-100, 10)
	if err := db.Update(ctx, func(tx store.Tx) error { _, err := tx.LoadOrStoreSecret(stale, []byte("x")); return err }); err != nil {
		t.Fatal(err)
	}

	k, err := Open(ctx, db, hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	name := func(offset int64) string {
		return "upstream-jwt-es256/3600/" + strconv.FormatInt(now.Unix()/3600+offset, 10)
	}
	if got, want := secretNames(t, db, "upstream-jwt-es256/3600/"), []string{name(0), name(1)}; !slices.Equal(got, want) {
		t.Fatalf("at start: %v, want %v (the stale key deleted)", got, want)
	}
	var tok string
	for i := range 6 {
		tok, _, err = k.Sign(ctx, "i", "a", "u1", Claims{}, hour)
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(hour)
		settle(t, k)
		ids, err := k.KeyIDs(ctx)
		if err != nil || len(ids) != 3 {
			t.Fatalf("period %d: key IDs %v, %v", i, ids, err)
		}
		want := []string{name(-1), name(0), name(1)}
		if got := secretNames(t, db, "upstream-jwt-es256/3600/"); !slices.Equal(got, want) {
			t.Fatalf("period %d: stored %v, want previous, current and next %v", i, got, want)
		}
		// A token signed in the previous period verifies with the JWKS.
		if c, _, err := verifyWithJWKS(t, k, tok); err != nil || c.Subject != "u1" {
			t.Fatalf("period %d: token of the previous period: %v", i, err)
		}
	}
	// Skipping periods (an instance down for a while) deletes all older keys.
	now = now.Add(10 * hour)
	if _, err := k.KeyIDs(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := secretNames(t, db, "upstream-jwt-es256/3600/"), []string{name(0), name(1)}; !slices.Equal(got, want) {
		t.Fatalf("after a gap: %v, want the current and next %v", got, want)
	}
	if got := secretNames(t, db, "upstream-jwt-es256/86400/"); !slices.Equal(got, otherKeys) {
		t.Fatalf("other rotation's keys: %v, want untouched %v", got, otherKeys)
	}
	if _, err := other.KeyIDs(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKeyRotationChangeKeepsTokensInFlight: a reload that changes
// key_rotation gives the route a keyring of another schedule; a token the
// old one signed a moment before verifies with the new one's JWKS for as
// long as it can be valid, and its key is published no longer after.
func TestKeyRotationChangeKeepsTokensInFlight(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	const week, day = 7 * 24 * time.Hour, 24 * time.Hour
	weekly, err := Open(ctx, db, week, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := weekly.Sign(ctx, "https://app.example", "https://app.example", "u1", Claims{}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	daily, err := Open(ctx, db, day, clock) // the reload
	if err != nil {
		t.Fatal(err)
	}
	if _, kid, err := verifyWithJWKS(t, daily, tok); err != nil {
		t.Fatalf("a token signed before key_rotation changed (kid %s), with the JWKS after: %v", kid, err)
	}
	// The weekly keys' periods and one more have passed: no token they
	// signed is valid, and they are neither published nor kept.
	for range 22 {
		now = now.Add(day)
		settle(t, daily)
	}
	if _, _, err := verifyWithJWKS(t, daily, tok); err == nil {
		t.Error("the old schedule's key is still published three of its periods later")
	}
	if names := secretNames(t, db, "upstream-jwt-es256/604800/"); len(names) != 0 {
		t.Errorf("the old schedule's keys still stored: %v", names)
	}
}

// TestSignNotAfter: Claims.NotAfter bounds exp at its whole second, read
// against the clock Sign reads after the key; a bound already passed (or
// reached) gives the token a second, and none leaves the ttl alone.
func TestSignNotAfter(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	k, err := Open(ctx, db, DefaultRotation, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		notAfter time.Time
		want     time.Time
	}{
		{"none", time.Time{}, now.Add(5 * time.Minute)},
		{"beyond the ttl", now.Add(time.Hour), now.Add(5 * time.Minute)},
		{"within the ttl, just before a whole second", now.Add(time.Minute - time.Millisecond), now.Add(time.Minute - time.Second)},
		{"passed", now.Add(-time.Minute), now.Add(time.Second)},
		// A bound at the clock's own second has passed too: a token that
		// expires as it is issued is no token.
		{"now", now, now.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, exp, err := k.Sign(ctx, "i", "a", "u1", Claims{NotAfter: tc.notAfter}, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(tc.want) {
				t.Errorf("Sign returned exp %v, want %v", exp, tc.want)
			}
			c, _, err := verifyWithJWKS(t, k, tok)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Expiry.Time(); !got.Equal(tc.want) {
				t.Errorf("exp claim %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUnionVerifiesEveryKeyringsTokens: the JWKS of several routes'
// keyrings (Union) verifies the tokens each signs, and one a key_rotation
// the reload changed signed a moment before (the keys published
// elsewhere), listing each key once.
func TestUnionVerifiesEveryKeyringsTokens(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	weekly, err := Open(ctx, db, 7*24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k *Keyring) string {
		tok, _, err := k.Sign(ctx, "https://app.example", "https://app.example", "u1", Claims{}, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	before := sign(weekly)
	// The reload: two routes, of two other key_rotation values.
	daily, err := Open(ctx, db, 24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	hourly, err := Open(ctx, db, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Union(ctx, daily, hourly)
	if err != nil {
		t.Fatal(err)
	}
	set := publicKeySet(t, raw)
	seen := map[string]bool{}
	for _, k := range set.Keys {
		if seen[k.KeyID] {
			t.Errorf("key %s listed twice", k.KeyID)
		}
		seen[k.KeyID] = true
	}
	for name, tok := range map[string]string{"the daily route's": sign(daily), "the hourly route's": sign(hourly), "one signed before the reload": before} {
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		var c jwt.Claims
		if err := parsed.Claims(&set, &c); err != nil {
			t.Errorf("%s token (kid %s) does not verify against the union: %v", name, parsed.Headers[0].KeyID, err)
		}
	}
}
