package caddymodule

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

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
		db, err := bolt.Open(key, bolt.Options{})
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
