package caddymodule

import (
	"context"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/backend"
)

// storePool shares one open store per file or database across config
// reloads: a reload starts the new config while the old one still runs,
// and bbolt allows one open per file (a second open would wait on its own
// lock), while a PostgreSQL pool and its listener are worth keeping.
var storePool = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

func (p pooledStore) Destruct() error { return p.Store.Close() }

// acquireStore opens (or shares) the store spec names, and returns the key
// to give it back with: every successful call must be paired with
// releaseStore(key).
func acquireStore(ctx context.Context, spec backend.Spec, logger *zap.Logger) (store.Store, string, error) {
	key, err := spec.Key()
	if err != nil {
		return nil, "", err
	}
	if spec.OnWrite == nil {
		spec.OnWrite = slowWrites(spec, logger)
	}
	v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		st, err := backend.Open(ctx, spec, logger)
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(pooledStore).Store, key, nil
}

// releaseStore gives back one reference taken by acquireStore; the last
// one closes the store.
func releaseStore(key string) error {
	_, err := storePool.Delete(key)
	return err
}

// slowWriteThreshold is the write-lock hold a store write is logged at:
// every sign-in and SCIM write queued behind it waits that long.
const slowWriteThreshold = 100 * time.Millisecond

// slowWrites logs each write transaction that held the store's write lock
// for slowWriteThreshold or longer (docs/operations.md, "Limits and
// behaviour under failure").
func slowWrites(spec backend.Spec, logger *zap.Logger) func(held time.Duration) {
	return func(held time.Duration) {
		if held >= slowWriteThreshold {
			logger.Warn("a store write held the write lock long", zap.Stringer("store", spec), zap.Duration("held", held))
		}
	}
}
