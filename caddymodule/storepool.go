package caddymodule

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// storePool shares one open bbolt handle per file across config reloads: a
// reload provisions the new config while the old one still runs, and bbolt
// allows one open per file, so the new App must reuse the old handle rather
// than open the file a second time (which would wait on its own lock).
var storePool = caddy.NewUsagePool()

type pooledDB struct{ *bolt.DB }

func (p pooledDB) Destruct() error { return p.DB.Close() }

// acquireBolt opens (or shares) the store at path. Every successful call
// must be paired with releaseBolt(path).
func acquireBolt(path string) (*bolt.DB, error) {
	key, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store path %q: %w", path, err)
	}
	v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := bolt.Open(key, bolt.Options{OnWrite: slowWrites(key)})
		if err != nil {
			return nil, err
		}
		return pooledDB{db}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledDB).DB, nil
}

// releaseBolt gives back one reference taken by acquireBolt; the last one
// closes the file.
func releaseBolt(path string) error {
	key, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	_, err = storePool.Delete(key)
	return err
}

// slowWriteThreshold is the write-lock hold a store write is logged at:
// every sign-in and SCIM write queued behind it waits that long.
const slowWriteThreshold = 100 * time.Millisecond

// slowWrites logs each write transaction that held the store's write lock
// for slowWriteThreshold or longer (docs/operations.md, "Limits and
// behaviour under failure").
func slowWrites(path string) func(held time.Duration) {
	return func(held time.Duration) {
		if held >= slowWriteThreshold {
			caddy.Log().Named("sso.store").Warn("a store write held the write lock long",
				zap.String("store", path), zap.Duration("held", held))
		}
	}
}
