package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// KeysLockSecret names the row of the secrets table that LockKeys writes.
// It holds no key, only keysLockValue, and it stays in the table once a
// rotation wrote it: a backup carries it, and a restore writes it back,
// which does no harm (docs/operations.md, "Rotating the store's keys").
const KeysLockSecret = "key-rotation-lock"

// keysLockValue is the value of KeysLockSecret: the same in every store
// and every release, so that a restore never finds it differing.
const keysLockValue = "no key: caddy sso keys rotate and finish take turns on this row"

// lockKeysAttempts bounds LockKeys' rounds: each round that fails means
// that another transaction took the row and committed meanwhile.
const lockKeysAttempts = 16

// LockKeys makes tx, a write transaction, the only one that moves the
// store's keys (the flow cookies', the sessions' tokens', the identity
// JWT's: keys.Rotate and keys.Finish, and Reseal's deletion of the
// previous tokens key at the finish) until it ends; call it before tx
// reads any of them. Another such transaction waits in LockKeys for tx to commit or
// roll back, and then reads what tx wrote. Without it, two rotations at
// once on PostgreSQL (read committed) could each move the key it read:
// the second one's key, gone by then, as the previous key, and the first
// one's deleted, which had sealed every session's tokens.
//
// It deletes KeysLockSecret and writes it again: a delete waits for any
// other transaction that deleted the row to end, and then, the row being
// gone, deletes nothing (store.ErrNotFound), so the round starts again on
// the row that one wrote; while the row is absent (the first rotation of
// a store), the insert waits for another's insert instead. bbolt has one
// writer anyway.
func LockKeys(tx store.Tx) error {
	for range lockKeysAttempts {
		if _, err := tx.LoadOrStoreSecret(KeysLockSecret, []byte(keysLockValue)); err != nil {
			return fmt.Errorf("session: lock the keys: %w", err)
		}
		err := tx.DeleteSecret(KeysLockSecret)
		if errors.Is(err, store.ErrNotFound) {
			continue // another transaction held it, and has committed
		}
		if err == nil {
			_, err = tx.LoadOrStoreSecret(KeysLockSecret, []byte(keysLockValue))
		}
		if err != nil {
			return fmt.Errorf("session: lock the keys: %w", err)
		}
		return nil
	}
	return fmt.Errorf("session: lock the keys: %d other rotations took turns first; try again", lockKeysAttempts)
}

// RotateTokensKey replaces the key that seals the sessions' tokens, in tx:
// the current key becomes TokensKeyPrevious and a fresh random one the
// current key, so that every blob sealed from then on (a sign-in, a
// refresh: putSealed reads the key in its own transaction) is sealed under
// the new key, while those sealed before still open (openTokens tries both).
// Only a transaction that read the key before tx committed, and commits
// after, still seals under the previous key: so the rotation re-seals with
// ResealOptions.KeepPrevious, and its finish, minutes later, re-seals again
// and deletes the previous key (docs/operations.md, "Rotating the store's
// keys").
//
// It reports false, changing nothing, when a previous key is still there:
// the rotation before is unfinished, and moving the current key over it
// would leave the blobs only it opens unopenable (keys.Rotate refuses
// before, keys.ErrFinishFirst). A store that never sealed a blob gets its
// first key. The caller has taken LockKeys in tx.
func RotateTokensKey(tx store.Tx) (bool, error) {
	if _, err := tx.LoadOrStoreSecret(TokensKeyPrevious, nil); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	cur, err := tx.LoadOrStoreSecret(TokensKeySecret, nil)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = tx.Secret(TokensKeySecret, 32)
		return err == nil, err
	case err != nil:
		return false, err
	}
	if _, err := tx.LoadOrStoreSecret(TokensKeyPrevious, cur); err != nil {
		return false, err
	}
	if err := tx.DeleteSecret(TokensKeySecret); err != nil {
		return false, err
	}
	_, err = tx.Secret(TokensKeySecret, 32) // fresh random bytes
	return err == nil, err
}

// ResealPending reports whether a rotation of the tokens key is unfinished:
// the previous key is still in the store, until the finish's Reseal
// deletes it.
func ResealPending(tx store.Tx) (bool, error) {
	_, err := tx.LoadOrStoreSecret(TokensKeyPrevious, nil)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ResealOptions tune Reseal.
type ResealOptions struct {
	// Batch is how many sessions one transaction reads (the scan) or
	// seals again; 0 means DefaultResealBatch.
	Batch int
	// Progress, when set, is told after each batch.
	Progress func(ResealProgress)
	// Rest is the pause between two batches that sealed blobs again, so
	// that sign-ins commit between them; 0 means none.
	Rest time.Duration
	// KeepPrevious: one pass, and the previous key stays (keys.Rotate).
	// Right after a rotation, a sign-in or a refresh that read the key
	// before the rotation committed may still commit a blob sealed under
	// it, which no pass can see before: deleting the key then would leave
	// that blob opening for no one. The finish (keys.Finish), long after
	// such a transaction ended, re-seals again and deletes the key.
	KeepPrevious bool
}

// DefaultResealBatch is the sessions per transaction of Reseal: a few
// hundred keeps a write transaction (an AES-GCM open and seal and a
// blob write each) to a few milliseconds, like a sweep's batch
// (docs/architecture.md, "background work yields to sign-ins").
const DefaultResealBatch = 256

// ResealProgress is where a Reseal is.
type ResealProgress struct {
	Pass     int // 1, then 2 for the final pass that finds nothing (or more)
	Scanned  int // sessions read in this pass
	Sessions int // sessions in the store when the pass began
	Resealed int // blobs sealed again, in all passes
}

// ResealStats is what a Reseal did.
type ResealStats struct {
	Resealed int `json:"resealed"`
	// Unopenable counts blobs neither key opens (damaged, or sealed under
	// a key the store no longer holds): they stay as they are, opening
	// for no one, as before the rotation.
	Unopenable int `json:"unopenable"`
	Passes     int `json:"passes"`
	// PreviousDeleted: the final pass found no blob that only the previous
	// key opens, and the key is gone. Never with KeepPrevious.
	PreviousDeleted bool `json:"previous_deleted"`
	// PreviousReplaced: the previous key was deleted by another run and a
	// new rotation replaced it while this one ran; it is kept for that
	// rotation's own finish (not deleted: PreviousDeleted is false).
	PreviousReplaced bool `json:"previous_replaced,omitempty"`
}

// Reseal seals again, under the current key, every session's token blob
// that only the previous key opens, in batches (each its own transaction,
// a scan then a write of those it found), and deletes the previous key
// once a final pass finds none: nothing seals under it any more once the
// transactions that read it before RotateTokensKey committed have ended,
// so a pass that found none is the last; with opt.KeepPrevious (right
// after the rotation, when such a transaction may still commit) it makes
// one pass and keeps the key. Interrupted (ctx ended, the store failed),
// it leaves the previous key, and running it again finishes; with no
// previous key it does nothing.
//
// The previous key is deleted only if it is still the one the pass began
// with (under LockKeys): when another run finished first and a rotation
// followed, the key now previous is that rotation's, which a transaction
// that straddled it may still seal under, so it stays for that rotation's
// finish (PreviousReplaced).
func Reseal(ctx context.Context, db store.Store, opt ResealOptions) (ResealStats, error) {
	var stats ResealStats
	batch := opt.Batch
	if batch <= 0 {
		batch = DefaultResealBatch
	}
	for {
		var (
			keys     tokenKeys
			sessions int
		)
		err := db.View(ctx, func(tx store.Tx) error {
			var err error
			if keys, err = readTokenKeys(tx); err != nil {
				return err
			}
			c, err := tx.Counts()
			sessions = c.Sessions
			return err
		})
		if err != nil {
			return stats, fmt.Errorf("session: reseal: %w", err)
		}
		if keys.prev == nil {
			return stats, nil
		}
		stats.Passes++
		found, unopenable, err := resealPass(ctx, db, batch, opt, &stats, sessions)
		if err != nil {
			return stats, err
		}
		if opt.KeepPrevious {
			stats.Unopenable = unopenable
			return stats, nil
		}
		if found > 0 {
			continue
		}
		stats.Unopenable = unopenable
		var rotated bool
		err = db.Update(ctx, func(tx store.Tx) error {
			rotated = false
			if err := LockKeys(tx); err != nil {
				return err
			}
			prev, err := tx.LoadOrStoreSecret(TokensKeyPrevious, nil) // nil: only look
			switch {
			case errors.Is(err, store.ErrNotFound):
				return nil // another run finished first
			case err != nil:
				return err
			case !bytes.Equal(prev, keys.prev):
				rotated = true
				return nil
			}
			return tx.DeleteSecret(TokensKeyPrevious)
		})
		if err != nil {
			return stats, fmt.Errorf("session: reseal: delete the previous key: %w", err)
		}
		if rotated {
			stats.PreviousReplaced = true
			return stats, nil
		}
		stats.PreviousDeleted = true
		return stats, nil
	}
}

// errBatchFull stops a scan once it has read a batch.
var errBatchFull = errors.New("batch full")

// resealPass reads every session once, in batches, and seals again the
// blobs only the previous key opens. It returns how many it found so, and
// how many neither key opens.
func resealPass(ctx context.Context, db store.Store, batch int, opt ResealOptions, stats *ResealStats, sessions int) (found, unopenable int, err error) {
	after, scanned := "", 0
	for {
		if err := ctx.Err(); err != nil {
			return found, unopenable, fmt.Errorf("session: reseal interrupted: %w", err)
		}
		var (
			stale []string
			n     int
			bad   int
			last  string
		)
		// The scan reads, so it holds no write lock: only the blobs it
		// found go into a write transaction.
		err := db.View(ctx, func(tx store.Tx) error {
			stale, n, bad, last = stale[:0], 0, 0, after
			keys, err := readTokenKeys(tx)
			if err != nil {
				return err
			}
			var hashes []string
			err = tx.ForEachSession(after, func(s *store.Session) error {
				if len(hashes) == batch {
					return errBatchFull
				}
				hashes = append(hashes, s.Hash)
				return nil
			})
			if err != nil && !errors.Is(err, errBatchFull) {
				return err
			}
			for _, hash := range hashes {
				blob, err := tx.SessionTokens(hash)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if len(blob) == 0 || blob[0] != sealedV1 {
					continue // none, or a plain ID token: no key
				}
				if _, err := openSealed(keys.cur, hash, blob); err == nil {
					continue
				}
				if _, err := openSealed(keys.prev, hash, blob); err == nil {
					stale = append(stale, hash)
				} else {
					bad++
				}
			}
			if n = len(hashes); n > 0 {
				last = hashes[n-1]
			}
			return nil
		})
		if err != nil {
			return found, unopenable, fmt.Errorf("session: reseal: %w", err)
		}
		after = last
		scanned += n
		unopenable += bad
		found += len(stale)
		if len(stale) > 0 {
			var done int
			err := db.Update(store.Background(ctx), func(tx store.Tx) error {
				var err error
				done, err = resealBlobs(tx, stale)
				return err
			})
			if err != nil {
				return found, unopenable, fmt.Errorf("session: reseal: %w", err)
			}
			stats.Resealed += done
		}
		if opt.Progress != nil {
			opt.Progress(ResealProgress{Pass: stats.Passes, Scanned: scanned, Sessions: sessions, Resealed: stats.Resealed})
		}
		if n < batch {
			return found, unopenable, nil
		}
		if len(stale) > 0 && opt.Rest > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(opt.Rest):
			}
		}
	}
}

// resealBlobs seals the sessions' blobs again under the current key, in
// tx, reading each afresh: a session may have ended since the scan, or
// been sealed again by a refresh (under the current key).
func resealBlobs(tx store.Tx, hashes []string) (int, error) {
	keys, err := readTokenKeys(tx)
	if err != nil || keys.cur == nil {
		return 0, err
	}
	done := 0
	for _, hash := range hashes {
		blob, err := tx.SessionTokens(hash)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return done, err
		}
		if len(blob) == 0 || blob[0] != sealedV1 {
			continue
		}
		if _, err := openSealed(keys.cur, hash, blob); err == nil {
			continue
		}
		plain, err := openSealed(keys.prev, hash, blob)
		if err != nil {
			continue // neither opens it: left as it is
		}
		sealed, err := seal(keys.cur, hash, plain)
		if err != nil {
			return done, fmt.Errorf("seal tokens: %w", err)
		}
		if err := tx.PutSessionTokens(hash, sealed); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}
