package caddymodule

import (
	"context"

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

func (p pooledStore) Destruct() error { return p.Close() }

// acquireStore opens (or shares) the store spec names, and returns the key
// to give it back with: every successful call must be paired with
// releaseStore(key).
func acquireStore(ctx context.Context, spec backend.Spec, logger *zap.Logger) (store.Store, string, error) {
	key, err := spec.Key()
	if err != nil {
		return nil, "", err
	}
	if spec.OnWrite == nil {
		spec.OnWrite = backend.SlowWrites(spec, logger)
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
