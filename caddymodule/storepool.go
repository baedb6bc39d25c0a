package caddymodule

import (
	"context"
	"errors"

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

// pooledStore is one open store and what ends as it closes.
type pooledStore struct {
	store.Store
	// closing ends when the last user gives the store back, before it
	// closes: a request that reads it for as long as its client takes (an
	// admin API backup) lets go then, as bbolt's Close waits for its read
	// transactions. A reload that keeps the store does not end it.
	closing context.Context
	close   context.CancelCauseFunc
}

// errStoreClosing is the cause of pooledStore.closing.
var errStoreClosing = errors.New("sso: the store is closing (Caddy's stop, or a reload that no longer uses it)")

func (p *pooledStore) Destruct() error {
	p.close(errStoreClosing)
	return p.Close()
}

// acquireStore opens (or shares) the store spec names, and returns the key
// to give it back with: every successful call must be paired with
// releaseStore(key).
func acquireStore(ctx context.Context, spec backend.Spec, logger *zap.Logger) (*pooledStore, string, error) {
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
		closing, end := context.WithCancelCause(context.Background())
		return &pooledStore{Store: st, closing: closing, close: end}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*pooledStore), key, nil
}

// releaseStore gives back one reference taken by acquireStore; the last
// one closes the store.
func releaseStore(key string) error {
	_, err := storePool.Delete(key)
	return err
}
