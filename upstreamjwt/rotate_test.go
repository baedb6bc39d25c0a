package upstreamjwt

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestRotateRetiresEveryKey (docs/operations.md, "Rotating the store's
// keys"): after Rotate, a running keyring, without a reload, takes the new
// keys within RecheckInterval: a token signed before no longer verifies
// with the JWKS it publishes (no key published before is), and a new one
// does. Keys of another rotation value go too.
func TestRotateRetiresEveryKey(t *testing.T) {
	db := backendtest.OpenBolt(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	const day = 24 * time.Hour
	k, err := Open(ctx, db, day, clock)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(ctx, db, time.Hour, clock) // another route's key_rotation
	if err != nil {
		t.Fatal(err)
	}
	oldKids := publishedKids(t, k)
	tok, _, err := k.Sign(ctx, "https://app.example.com", "https://app.example.com", "u1", Claims{}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	var rot Rotated
	if err := db.Update(ctx, func(tx store.Tx) (err error) { rot, err = Rotate(tx, now); return err }); err != nil {
		t.Fatal(err)
	}
	if rot.Retired != 4 || rot.Made != 4 {
		t.Errorf("Rotate: %+v; want 4 retired (2 of each value) and 4 made", rot)
	}

	if n := k.Replaced(); n != 0 {
		t.Errorf("Replaced = %d before the keyring saw the rotation", n)
	}
	now = now.Add(RecheckInterval)
	settle(t, k)
	if n := k.Replaced(); n != 1 {
		t.Errorf("Replaced = %d after the keyring took the rotated keys, want 1: a cached token its old key signed would be sent on", n)
	}
	newKids := publishedKids(t, k)
	for _, kid := range oldKids {
		if slices.Contains(newKids, kid) {
			t.Errorf("key %s, retired, is still published: %v", kid, newKids)
		}
	}
	if _, _, err := verifyWithJWKS(t, k, tok); err == nil {
		t.Error("a token signed before the rotation still verifies with the JWKS after it")
	}
	tok2, _, err := k.Sign(ctx, "i", "a", "u1", Claims{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, kid, err := verifyWithJWKS(t, k, tok2); err != nil || slices.Contains(oldKids, kid) {
		t.Errorf("a token signed after the rotation: kid %s, %v", kid, err)
	}
	settle(t, other)
	if kids := publishedKids(t, other); slices.ContainsFunc(kids, func(kid string) bool { return slices.Contains(oldKids, kid) }) {
		t.Errorf("the other rotation value publishes a retired key: %v", kids)
	}

	// With nothing rotated, a recheck reads no new key.
	now = now.Add(RecheckInterval)
	settle(t, k)
	if kids := publishedKids(t, k); !slices.Equal(kids, newKids) {
		t.Errorf("a recheck with nothing rotated changed the keys: %v, was %v", kids, newKids)
	}
	// Nor does the period's own rotation count: the key that signed stays
	// published a period longer.
	now = now.Add(day)
	settle(t, k)
	now = now.Add(RecheckInterval)
	settle(t, k)
	if n := k.Replaced(); n != 1 {
		t.Errorf("Replaced = %d after a rotation period passed, want still 1", n)
	}
}
