package upstreamjwt

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// payloadOf is tok's payload as JSON values, as an upstream reads it.
func payloadOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSignOptionalClaims: a person in no group gets "groups": [] (an
// array an upstream can iterate, never null), and auth_time is there only
// when the IdP said when the person authenticated, in whole seconds.
func TestSignOptionalClaims(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	k, err := Open(ctx, db, DefaultRotation, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	authAt := now.Add(-time.Hour)
	for _, tc := range []struct {
		name       string
		claims     Claims
		wantGroups []any
		wantAuth   any // nil: absent
	}{
		{"no groups, auth time unknown", Claims{}, []any{}, nil},
		{"empty groups", Claims{Groups: []string{}}, []any{}, nil},
		{"groups and auth time", Claims{Groups: []string{"admins", "ops"}, AuthTime: authAt}, []any{"admins", "ops"}, float64(authAt.Unix())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, _, err := k.Sign(ctx, "i", "a", "u1", tc.claims, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			p := payloadOf(t, tok)
			g, ok := p["groups"].([]any)
			if !ok || !slices.Equal(g, tc.wantGroups) {
				t.Errorf("groups claim %#v, want %#v", p["groups"], tc.wantGroups)
			}
			auth, has := p["auth_time"]
			switch {
			case tc.wantAuth == nil && has:
				t.Errorf("auth_time %v present, the IdP did not say when the person authenticated", auth)
			case tc.wantAuth != nil && auth != tc.wantAuth:
				t.Errorf("auth_time %v, want %v", auth, tc.wantAuth)
			}
		})
	}
}

// TestDefaultRotationForZero: New and Open take DefaultRotation for a
// rotation of zero, as they document, rather than divide by it: the
// keyring signs, with the keys a keyring of DefaultRotation publishes.
func TestDefaultRotationForZero(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	zero := New(db, 0, clock)
	tok, _, err := zero.Sign(ctx, "i", "a", "u1", Claims{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	def, err := Open(ctx, db, DefaultRotation, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verifyWithJWKS(t, def, tok); err != nil {
		t.Errorf("a token of the keyring made with rotation 0 does not verify at one of DefaultRotation: %v", err)
	}
}

// TestClockSetBackOneRotationStillRechecks: with the clock set back
// across one rotation (the held set one period ahead of it, still
// signing), the minute's recheck still reads the held period's keys
// again, so that a `caddy sso keys rotate` is seen within
// RecheckInterval, not once the clock has caught up.
func TestClockSetBackOneRotationStillRechecks(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	const rotation = 24 * time.Hour
	base := time.Unix(1_800_000_000, 0).Truncate(rotation)
	clock := newStepClock(base.Add(rotation + time.Hour)) // a period ahead
	k, err := Open(ctx, db, rotation, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	before := signWithin(t, k, "u1")
	back := base.Add(23 * time.Hour) // the period before
	clock.set(back)
	if err := db.Update(ctx, func(tx store.Tx) error { _, err := Rotate(tx, back); return err }); err != nil {
		t.Fatal(err)
	}
	clock.set(back.Add(RecheckInterval + time.Second))
	signWithin(t, k, "u1")
	settle(t, k)
	if n := k.Replaced(); n != 1 {
		t.Errorf("Replaced = %d a minute after a rotation, the clock set back a period; want 1", n)
	}
	if _, _, err := verifyWithJWKS(t, k, before); err == nil {
		t.Error("a token signed before the rotation still verifies with the JWKS a minute after it")
	}
	after := signWithin(t, k, "u1")
	if kidOf(t, after) == kidOf(t, before) {
		t.Errorf("still signing with the retired key %s", kidOf(t, before))
	}
}

// TestClockSetBackThenRightAgain: the clock set back over rotations
// starts a read of its period in the background; if the clock is set
// forward again before that read lands, the read is stale and the held
// set goes on signing: with the store away then, tokens are still signed
// from memory rather than failing with ErrUnavailable.
func TestClockSetBackThenRightAgain(t *testing.T) {
	a, _ := openAway(t)
	ctx := context.Background()
	const rotation = time.Hour
	base := time.Unix(1_800_000_000, 0).Truncate(rotation)
	right := base.Add(5*rotation + time.Minute)
	clock := newStepClock(right)
	k, err := Open(ctx, a, rotation, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	held := signWithin(t, k, "u1")

	gate := make(chan struct{})
	a.gate.Store(&gate)
	clock.set(base.Add(time.Minute)) // five rotations back: a read starts, and waits
	signWithin(t, k, "u1")
	clock.set(right) // set right before it lands
	close(gate)
	a.gate.Store(nil)
	k.mu.Lock()
	f := k.loading
	k.mu.Unlock()
	if f != nil {
		<-f.done
	}

	a.away.Store(true)
	tok := signWithin(t, k, "u1")
	if kidOf(t, tok) != kidOf(t, held) {
		t.Errorf("signs with %s, want the held set's %s", kidOf(t, tok), kidOf(t, held))
	}
}

// TestRotateMakesKeysOfValueWithOnlyNextKey: Rotate counts a rotation
// value as in use when the store holds its next period's key (an instance
// whose clock is a little ahead of the one running Rotate, past a
// rotation): it makes fresh keys for it, the current and next period's.
func TestRotateMakesKeysOfValueWithOnlyNextKey(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	const rotation = time.Hour
	base := time.Unix(1_800_000_000, 0).Truncate(rotation)
	ahead := base.Add(rotation + time.Second)
	if _, err := Open(ctx, db, rotation, func() time.Time { return ahead }); err != nil {
		t.Fatal(err)
	}
	var rot Rotated
	err := db.Update(ctx, func(tx store.Tx) (err error) {
		rot, err = Rotate(tx, base.Add(rotation-time.Second))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rot.Retired != 2 || rot.Made != 2 {
		t.Errorf("Rotate: %+v; want 2 retired and 2 made (the value's current and next)", rot)
	}
	if names := secretNames(t, db, secretRoot); len(names) != 2 {
		t.Errorf("keys stored after Rotate: %v, want the value's current and next", names)
	}
}
