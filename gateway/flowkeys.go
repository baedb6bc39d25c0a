package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/store"
)

// flowKeysReadTimeout bounds one read of the flow cookies' keys in the
// background.
const flowKeysReadTimeout = 30 * time.Second

// FlowKeys keys the flow cookies of every IdP with the secrets kept in the
// store, so that a sign-in begun before a restart, or on another instance
// of the store, completes; and keeps them the store's while the instance
// runs: `caddy sso keys rotate` and `keys finish` reach every running
// instance within a recheck, without a reload (docs/operations.md,
// "Rotating the store's keys").
type FlowKeys struct {
	DB store.Store
	// Every is how often the keys are read again; 0 means
	// idp.FlowKeyRecheckInterval.
	Every time.Duration
}

// Cookies reads the flow cookies' key (storing the store's first one) and
// the key before a rotation, while the store keeps it, and returns flow
// cookies keyed by them. Until ctx ends it then reads both again every
// k.Every, in the background, and gives the cookies the store's keys when
// they differ: a sign-in begun on another instance after a rotation
// completes here within a recheck, and one only the deleted previous key
// opens (a leaked key) stops completing within a recheck of `keys finish`.
// A read that fails keeps the keys in memory until the next one: a store
// that is away fails the sign-ins anyway.
func (k FlowKeys) Cookies(ctx context.Context) (*idp.FlowCookies, error) {
	var key, previous []byte
	err := k.DB.Update(ctx, func(tx store.Tx) error {
		var err error
		if key, err = tx.Secret(idp.FlowCookieKeySecret, 32); err != nil {
			return err
		}
		previous, err = readPreviousFlowKey(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("flow cookie key: %w", err)
	}
	f, err := idp.NewFlowCookies(key, keyList(previous)...)
	if err != nil {
		return nil, err
	}
	go k.follow(ctx, f, key, previous)
	return f, nil
}

// follow reads the keys every k.Every until ctx ends, and gives f those
// that differ from key and previous, the ones it holds.
func (k FlowKeys) follow(ctx context.Context, f *idp.FlowCookies, key, previous []byte) {
	every := k.Every
	if every <= 0 {
		every = idp.FlowKeyRecheckInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cur, prev, err := k.read(ctx)
		if err != nil || bytes.Equal(cur, key) && bytes.Equal(prev, previous) {
			continue
		}
		if f.SetKeys(cur, keyList(prev)...) == nil {
			key, previous = cur, prev
		}
	}
}

// read reads the current and previous keys in a read transaction (the
// first key is Cookies' to store).
func (k FlowKeys) read(ctx context.Context) (cur, prev []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, flowKeysReadTimeout)
	defer cancel()
	err = k.DB.View(ctx, func(tx store.Tx) error {
		var err error
		if cur, err = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret, nil); err != nil { // nil: only look
			return err
		}
		prev, err = readPreviousFlowKey(tx)
		return err
	})
	return cur, prev, err
}

// readPreviousFlowKey returns the flow cookies' previous key, nil when the
// store keeps none.
func readPreviousFlowKey(tx store.Tx) ([]byte, error) {
	prev, err := tx.LoadOrStoreSecret(idp.FlowCookieKeySecret+idp.PreviousKeySuffix, nil) // nil: only look
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return prev, err
}

// keyList is the previous key as NewFlowCookies and SetKeys take it.
func keyList(previous []byte) [][]byte {
	if previous == nil {
		return nil
	}
	return [][]byte{previous}
}
