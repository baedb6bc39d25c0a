package upstreamjwt

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// signWithin signs with k, failing the test if it takes more than a few
// seconds: a keyring that loops on the store never returns by itself.
func signWithin(t *testing.T, k *Keyring, subject string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	tok, _, err := k.Sign(ctx, "https://app.example.com", "https://app.example.com", subject, Claims{}, 5*time.Minute)
	if err != nil {
		t.Fatalf("Sign: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
	return tok
}

// stepClock is a wall clock a test sets, and steps back.
type stepClock struct{ ns atomic.Int64 }

func (c *stepClock) set(t time.Time)      { c.ns.Store(t.UnixNano()) }
func (c *stepClock) now() time.Time       { return time.Unix(0, c.ns.Load()) }
func newStepClock(t time.Time) *stepClock { c := &stepClock{}; c.set(t); return c }

// TestClockSetBackAcrossRotation: an instance's wall clock, a few seconds
// ahead, passed a rotation and is stepped back before it (NTP). It signs
// and publishes at once with the set it holds, without the store (it was
// reading the older period's set again and again, never taking it, until
// the request's deadline): every request on an identity_jwt route hung.
// Another instance, whose clock was right all along, publishes the key it
// signs with, and it publishes theirs: tokens either signed verify at both.
func TestClockSetBackAcrossRotation(t *testing.T) {
	a, db := openAway(t)
	ctx := context.Background()
	const rotation = time.Hour
	boundary := time.Unix(1_800_000_000, 0).Truncate(rotation).Add(rotation)
	right := func() time.Time { return boundary.Add(-2 * time.Second) }
	kb, err := Open(ctx, db, rotation, right)
	if err != nil {
		t.Fatal(err)
	}
	clock := newStepClock(boundary.Add(time.Second))
	ka, err := Open(ctx, a, rotation, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	before := signWithin(t, ka, "u1") // with the new period's key

	clock.set(right()) // stepped back 3 s, across the rotation
	tries := a.tries.Load()
	after := signWithin(t, ka, "u1")
	if n := a.tries.Load() - tries; n != 0 {
		t.Errorf("Sign after the clock was set back wrote to the store %d times, want none", n)
	}
	if kidOf(t, after) != kidOf(t, before) {
		t.Errorf("after the step back it signs with %s, before with %s: want the set it holds", kidOf(t, after), kidOf(t, before))
	}
	a.away.Store(true) // and needs no store for it
	signWithin(t, ka, "u1")
	if _, err := ka.JWKS(ctx); err != nil {
		t.Fatalf("JWKS with the store away: %v", err)
	}
	a.away.Store(false)

	other := signWithin(t, kb, "u2")
	verifyEach(t, []tokenAt{
		{"a token signed before the step, at the other instance", kb, before},
		{"a token signed after the step, at the other instance", kb, after},
		{"the other instance's token, at the stepped one", ka, other},
	})
	settle(t, ka)
}

// TestClockSetBackOverRotations: a clock hours ahead (a host's hardware
// clock in local time, say) with a key_rotation of an hour is set right.
// The set held then shares no key with the instances whose clock was
// right: it still signs at once, the set of the clock's period is read in
// the background and signs from then on, the key the other instances
// sign with, and the keys of the set held before stay published for the
// tokens they signed.
func TestClockSetBackOverRotations(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	const rotation = time.Hour
	base := time.Unix(1_800_000_000, 0)
	clock := newStepClock(base.Add(3 * rotation))
	ka, err := Open(ctx, db, rotation, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	ahead := signWithin(t, ka, "u1")

	clock.set(base)
	if tok := signWithin(t, ka, "u1"); kidOf(t, tok) != kidOf(t, ahead) {
		t.Errorf("before the clock's period is read it signs with %s, want the held %s", kidOf(t, tok), kidOf(t, ahead))
	}
	settle(t, ka)
	after := signWithin(t, ka, "u1")

	kb, err := Open(ctx, db, rotation, func() time.Time { return base })
	if err != nil {
		t.Fatal(err)
	}
	other := signWithin(t, kb, "u2")
	if kidOf(t, after) != kidOf(t, other) {
		t.Errorf("once read it signs with %s, the instance whose clock was right with %s", kidOf(t, after), kidOf(t, other))
	}
	if kids := publishedKids(t, ka); !slices.Contains(kids, kidOf(t, ahead)) {
		t.Errorf("the key that signed just before the clock was set right is no longer published: %v", kids)
	}
	verifyEach(t, []tokenAt{
		{"a token signed before the step, at the stepped instance", ka, ahead},
		{"a token signed after the step, at the other instance", kb, after},
		{"the other instance's token, at the stepped one", ka, other},
	})
	// A rotation later the set is the clock's own again.
	clock.set(base.Add(rotation))
	settle(t, ka)
	if kids := publishedKids(t, ka); slices.Contains(kids, kidOf(t, ahead)) {
		t.Errorf("a rotation later the key of the set held before is still published: %v", kids)
	}
}

// TestClockSetBackAfterFailedRecheck: a background read that failed while
// the clock ran hours ahead set its retry time hours ahead of the right
// clock. Set right, with the store back, the clock's period is read at
// once, as when no read had failed; the retry time used to hold the
// keyring on the key the clock ahead chose for hours, a key no instance
// with a right clock publishes.
func TestClockSetBackAfterFailedRecheck(t *testing.T) {
	a, db := openAway(t)
	ctx := context.Background()
	const rotation = time.Hour
	base := time.Unix(1_800_000_000, 0)
	clock := newStepClock(base.Add(3 * rotation))
	ka, err := Open(ctx, a, rotation, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	ahead := signWithin(t, ka, "u1")

	a.away.Store(true) // a recheck a minute later fails
	clock.set(base.Add(3*rotation + RecheckInterval + time.Second))
	signWithin(t, ka, "u1")
	settle(t, ka)
	a.away.Store(false)

	clock.set(base)
	signWithin(t, ka, "u1")
	settle(t, ka)
	after := signWithin(t, ka, "u1")

	kb, err := Open(ctx, db, rotation, func() time.Time { return base })
	if err != nil {
		t.Fatal(err)
	}
	other := signWithin(t, kb, "u2")
	if kidOf(t, after) == kidOf(t, ahead) || kidOf(t, after) != kidOf(t, other) {
		t.Errorf("with the clock set right and the store back it signs with %s (the held key %s), want the right clock's %s",
			kidOf(t, after), kidOf(t, ahead), kidOf(t, other))
	}
	if _, _, err := verifyWithJWKS(t, kb, after); err != nil {
		t.Errorf("its token at an instance whose clock was right: %v", err)
	}
}

// TestClockSetBackWithinRotationStillRechecks: a check made before the
// clock was set back (within one rotation) lies "in the future"; the
// minute's recheck must still come, or a `caddy sso keys rotate` made
// meanwhile would be seen only once the clock caught up.
func TestClockSetBackWithinRotationStillRechecks(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	const rotation = 24 * time.Hour
	base := time.Unix(1_800_000_000, 0).Truncate(rotation)
	clock := newStepClock(base.Add(20 * time.Hour))
	k, err := Open(ctx, db, rotation, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	before := signWithin(t, k, "u1")
	clock.set(base.Add(2 * time.Hour)) // the same period, 18 hours back
	if err := db.Update(ctx, func(tx store.Tx) error { _, err := Rotate(tx, base.Add(2*time.Hour)); return err }); err != nil {
		t.Fatal(err)
	}
	clock.set(base.Add(2*time.Hour + RecheckInterval + time.Second))
	signWithin(t, k, "u1")
	settle(t, k)
	if n := k.Replaced(); n != 1 {
		t.Errorf("Replaced = %d a minute after a rotation, with the last check made before the clock was set back; want 1", n)
	}
	if _, _, err := verifyWithJWKS(t, k, before); err == nil {
		t.Error("a token signed before the rotation still verifies with the JWKS a minute after it")
	}
}

// tokenAt is a token to verify at a keyring's JWKS, named for the error.
type tokenAt struct {
	name string
	k    *Keyring
	tok  string
}

// verifyEach verifies each token at its keyring's JWKS.
func verifyEach(t *testing.T, cs []tokenAt) {
	t.Helper()
	for _, c := range cs {
		if _, _, err := verifyWithJWKS(t, c.k, c.tok); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
