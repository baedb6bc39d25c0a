package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestRunningInstanceFollowsFlowKeys (docs/operations.md, "Rotating the
// store's keys"): an instance that keeps running through `caddy sso keys
// rotate` and `keys finish` takes the store's flow keys within a recheck,
// without a reload. Each instance read them once at its start before:
// after a rotation, one not reloaded sealed with the old key and could
// not open the cookies of the new one, and after the finish, one reloaded
// in between still opened cookies sealed with the deleted (leaked) key
// until its next reload.
func TestRunningInstanceFollowsFlowKeys(t *testing.T) {
	ctx := context.Background()
	db := gateway.OpenTestStore(t, bolt.Options{NoSync: true})
	const every = 10 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	running, err := gateway.FlowKeys{DB: db, Every: every}.Cookies(runCtx)
	if err != nil {
		t.Fatal(err)
	}
	// sealsWithCurrent: a cookie running seals now opens with the store's
	// current key alone.
	sealsWithCurrent := func() bool {
		var cur []byte
		err := db.View(ctx, func(tx store.Tx) (err error) {
			cur, err = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		only, err := idp.NewFlowCookies(cur)
		if err != nil {
			t.Fatal(err)
		}
		return completeFlow(t, only, "probe", beginFlow(t, running, "probe")) == nil
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(every) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 5s (rechecks every %v): %s", every, what)
			}
		}
	}

	leaked := beginFlow(t, running, "leaked") // sealed with the key a backup leaked
	if _, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Flow}}); err != nil {
		t.Fatal(err)
	}
	eventually("after the rotation, the running instance seals with the new key", sealsWithCurrent)
	reloaded, err := gateway.FlowKeys{DB: db}.Cookies(ctx) // an instance started after the rotation
	if err != nil {
		t.Fatal(err)
	}
	if err := completeFlow(t, running, "fresh", beginFlow(t, reloaded, "fresh")); err != nil {
		t.Errorf("the running instance, a sign-in begun on one started after the rotation: %v", err)
	}
	if err := completeFlow(t, running, "leaked", leaked); err != nil {
		t.Errorf("before the finish, a sign-in begun before the rotation: %v", err)
	}

	if _, err := keys.Finish(ctx, db, keys.Options{Early: true}); err != nil {
		t.Fatal(err)
	}
	eventually("after the finish, the running instance refuses a cookie of the leaked key", func() bool {
		return completeFlow(t, running, "leaked", leaked) != nil
	})
	if !sealsWithCurrent() {
		t.Error("after the finish, the running instance does not seal with the current key")
	}

	// Once its context ends (the config retired), it follows no more.
	stop()
	time.Sleep(5 * every)
	if _, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Flow}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * every)
	if sealsWithCurrent() {
		t.Error("flow cookies whose context ended took the keys of a later rotation")
	}
}
