package bolt

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// Rehearsal. A write transaction holds bbolt's one write lock from its
// first read to its commit, and every other write queues behind it. When
// the pages it reads are not in memory (after a reboot, or once memory
// pressure dropped them), each costs a read from disk inside the lock:
// one item of a session sweep on the million-user store held it 192 ms,
// and a sign-in queued behind it waited as long (docs/operations.md,
// "Cold pages"). So an Update can first run its fn in a read transaction,
// which takes no lock, with a tx whose writes only walk to the page they
// would change (bucket); the pages then come from disk there, and the real
// run finds them in memory. A rehearsal writes nothing (bbolt refuses
// writes in a read transaction, so one that slips past bucket ends it),
// and what its fn returns or sets is dropped: fn may run more than once
// anyway (store package doc), and the real run sets it again.
//
// Background work is always rehearsed: a batch's reads are a small part of
// its cost, and its pages (expired sessions, idle ones) are the coldest of
// the store. A foreground Update (a sign-in, a SCIM write) is rehearsed only
// while the store is cold, which is when such a write or rehearsal read
// from disk in the last coldWindow: on a warm store the second run would
// only cost CPU.

// coldWindow is how long the store counts as cold after a foreground
// write or rehearsal last read from disk.
const coldWindow = 30 * time.Second

// rehearses reports whether an Update with ctx is rehearsed now.
func (db *DB) rehearses(ctx context.Context) bool {
	if db.noRehearsal {
		return false
	}
	return store.IsBackground(ctx) || time.Now().UnixNano() < db.coldUntil.Load()
}

// rehearse runs fn in a read transaction whose writes only read.
func (db *DB) rehearse(ctx context.Context, fn func(store.Tx) error) {
	faults := countFaults()
	defer faults.stop()
	_ = db.bdb.View(func(btx *bolt.Tx) error {
		_ = safeCall(fn, rehearsal{&tx{btx: btx, rehearsal: true}})
		return nil
	})
	db.noteFaults(ctx, faults.stop())
}

// rehearsal is the tx a rehearsed fn gets. It hides the bolt tx's
// Contended, so that store.RunItems hands a background batch all its
// items in one call: its deletes delete nothing, so one item at a time it
// would read the first item over and over.
type rehearsal struct{ store.Tx }

// noteFaults marks the store cold for coldWindow when a foreground
// transaction or rehearsal read from disk. Background work does not: its
// pages (expired sessions) are the coldest of the store even when the
// pages sign-ins read are in memory, and a foreground rehearsal would then
// only cost CPU.
func (db *DB) noteFaults(ctx context.Context, n int64) {
	if n > 0 && !store.IsBackground(ctx) {
		db.coldUntil.Store(time.Now().Add(coldWindow).UnixNano())
	}
}
