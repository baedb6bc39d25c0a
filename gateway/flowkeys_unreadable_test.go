package gateway_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// errPreviousAway is the read of the flow cookies' previous key failing
// for another reason than its absence (a PostgreSQL connection dropped
// between the two reads).
var errPreviousAway = errors.New("connection reset reading the previous key")

// previousAwayStore is a store whose reads of the flow cookies' previous
// key fail while away is set.
type previousAwayStore struct {
	store.Store
	away *atomic.Bool
}

func (s previousAwayStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(previousAwayTx{tx, s.away}) })
}

func (s previousAwayStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(previousAwayTx{tx, s.away}) })
}

type previousAwayTx struct {
	store.Tx
	away *atomic.Bool
}

func (tx previousAwayTx) LoadOrStoreSecret(name string, value []byte) ([]byte, error) {
	if name == idp.FlowCookieKeySecret+idp.PreviousKeySuffix && tx.away.Load() {
		return nil, errPreviousAway
	}
	return tx.Tx.LoadOrStoreSecret(name, value)
}

// TestFlowKeysWhenThePreviousKeyIsUnreadable: between `keys rotate` and
// `keys finish` the previous flow key opens the sign-ins begun before the
// rotation. A read of it that fails is not its absence: at start the
// config fails (saying which key), rather than run without it, and while
// running the instance keeps the keys it holds, rather than drop the
// previous one and fail those sign-ins until the next read.
func TestFlowKeysWhenThePreviousKeyIsUnreadable(t *testing.T) {
	ctx := context.Background()
	db := gateway.OpenTestStore(t, bolt.Options{NoSync: true})
	var away atomic.Bool
	s := previousAwayStore{db, &away}
	beforeCtx, stopBefore := context.WithCancel(ctx)
	defer stopBefore()
	before, err := gateway.FlowKeys{DB: s, Every: time.Hour}.Cookies(beforeCtx) // keeps the key before the rotation
	if err != nil {
		t.Fatal(err)
	}
	begun := beginFlow(t, before, "begun")
	if _, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Flow}}); err != nil {
		t.Fatal(err)
	}

	away.Store(true)
	if _, err := (gateway.FlowKeys{DB: s}).Cookies(ctx); !errors.Is(err, errPreviousAway) || !strings.HasPrefix(err.Error(), "flow cookie key: ") {
		t.Errorf("started with the previous key unreadable: %v, want the store's error after \"flow cookie key: \"", err)
	}

	away.Store(false)
	const every = 10 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	running, err := gateway.FlowKeys{DB: s, Every: every}.Cookies(runCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := completeFlow(t, running, "begun", begun); err != nil {
		t.Fatalf("a sign-in begun before the rotation: %v", err)
	}
	begun = beginFlow(t, before, "begun")
	away.Store(true)
	time.Sleep(20 * every) // rechecks that fail to read the previous key
	if err := completeFlow(t, running, "begun", begun); err != nil {
		t.Errorf("with the previous key unreadable for a while, a sign-in begun before the rotation: %v", err)
	}
}

// countingStore counts the read transactions begun on it.
type countingStore struct {
	store.Store
	views *atomic.Int64
}

func (s countingStore) View(ctx context.Context, fn func(store.Tx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

// TestFlowKeysStopWithTheirConfig: once the config that read the flow
// keys retires (its context ends), its instance reads them no more: a
// process reloaded a thousand times must not read the store a thousand
// times a recheck, for ever.
func TestFlowKeysStopWithTheirConfig(t *testing.T) {
	db := gateway.OpenTestStore(t, bolt.Options{NoSync: true})
	const every = 5 * time.Millisecond
	var views atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	if _, err := (gateway.FlowKeys{DB: countingStore{db, &views}, Every: every}).Cookies(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); views.Load() < 2; time.Sleep(every) {
		if time.Now().After(deadline) {
			t.Fatal("the keys were not read again within 5s")
		}
	}
	stop()
	time.Sleep(100 * every) // a read under way ends, on a loaded machine too
	n := views.Load()
	time.Sleep(40 * every)
	if more := views.Load() - n; more > 0 {
		t.Errorf("%d reads of the keys after the config retired", more)
	}
}
