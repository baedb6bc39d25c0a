package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

// TestCachedIdentityTokenSignedAgainAfterKeysRotate: an identity token
// cached for a session is signed again once the keyring has taken keys
// `caddy sso keys rotate` replaced, not sent on for the rest of its half
// lifetime: its key is no longer published, so the upstream would refuse
// the session's requests until then.
func TestCachedIdentityTokenSignedAgainAfterKeysRotate(t *testing.T) {
	e := newSignerEnv(t)
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	keys := upstreamjwt.New(e.db, upstreamjwt.DefaultRotation, clock)
	e.s.keys.Store(keys)

	id := e.resolve()
	before := e.sign(id)
	if again := e.sign(id); again != before {
		t.Fatal("the cached token was signed again with nothing changed")
	}
	if err := e.db.Update(ctx, func(tx store.Tx) error { _, err := upstreamjwt.Rotate(tx, now); return err }); err != nil {
		t.Fatal(err)
	}
	now = now.Add(upstreamjwt.RecheckInterval)
	deadline := time.Now().Add(10 * time.Second)
	for keys.Replaced() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the keyring never took the rotated keys")
		}
		_, _ = keys.JWKS(ctx) // starts the background recheck
		time.Sleep(10 * time.Millisecond)
	}
	if after := e.sign(id); after == before {
		t.Error("after the keys were rotated, the session's cached token, signed by a retired key, is still sent")
	}
}
