package keys_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// pausingStore pauses its first write transaction that looks up the
// secret name (LoadOrStoreSecret with nil: a rotation reading the key it
// moves), right after the read, until resume is closed.
type pausingStore struct {
	store.Store
	name           string
	paused, resume chan struct{}
	// done: a transaction paused already (not a sync.Once, whose Do would
	// hold up the others until the paused one resumes).
	done atomic.Bool
}

func newPausingStore(db store.Store, name string) *pausingStore {
	return &pausingStore{Store: db, name: name, paused: make(chan struct{}), resume: make(chan struct{})}
}

type pausingTx struct {
	store.Tx
	s *pausingStore
}

func (s *pausingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(&pausingTx{tx, s}) })
}

func (t *pausingTx) LoadOrStoreSecret(name string, v []byte) ([]byte, error) {
	out, err := t.Tx.LoadOrStoreSecret(name, v)
	if name == t.s.name && v == nil && err == nil && t.s.done.CompareAndSwap(false, true) {
		close(t.s.paused)
		<-t.s.resume
	}
	return out, err
}

// whilePaused runs first on ps until it pauses, then second on db, gives
// second a moment to finish while first is paused (it must not: first
// holds the keys), resumes first and waits for both.
func whilePaused(t *testing.T, ps *pausingStore, first, second func() error) {
	t.Helper()
	errFirst, errSecond := make(chan error, 1), make(chan error, 1)
	go func() { errFirst <- first() }()
	select {
	case <-ps.paused:
	case err := <-errFirst:
		t.Fatalf("the first ended without reading the key: %v", err)
	}
	go func() { errSecond <- second() }()
	var early bool
	select {
	case err := <-errSecond:
		early = true
		errSecond <- err
	case <-time.After(300 * time.Millisecond):
	}
	close(ps.resume)
	if err := <-errFirst; err != nil {
		t.Fatalf("the first: %v", err)
	}
	if err := <-errSecond; err != nil {
		t.Fatalf("the second: %v", err)
	}
	if early {
		t.Error("the second finished while the first held the keys it was moving")
	}
}

func readFlowKeys(t *testing.T, db store.Store) (cur, prev []byte) {
	t.Helper()
	err := db.View(context.Background(), func(tx store.Tx) error {
		var err error
		if cur, err = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret, nil); err != nil {
			return err
		}
		prev, _ = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret+idp.PreviousKeySuffix, nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cur, prev
}

// TestConcurrentRotationsTakeTurns: two rotations at once (two operators,
// or a retry from a second shell) on one store, the first paused right
// after it read the key it moves. On PostgreSQL (read committed), nothing
// made the second wait: it rotated and re-sealed every session under its
// new key, then the first moved the key it had read (gone by then) to the
// previous name and deleted the second's, so no key opened any session's
// tokens; and a leaked flow key came back as the previous one. Each now
// waits for the other's commit (session.LockKeys) and reads what it
// wrote. bbolt has one writer: the test holds there too.
func TestConcurrentRotationsTakeTurns(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		t.Run("tokens", func(t *testing.T) {
			m := session.New(db, session.Config{}, nil, nil)
			want := signIns(t, db, m, 3)
			ps := newPausingStore(db, session.TokensKeySecret)
			only := keys.Options{Only: []keys.Kind{keys.Tokens}}
			whilePaused(t, ps,
				func() error { _, err := keys.Rotate(ctx, ps, only); return err },
				func() error { _, err := keys.Rotate(ctx, db, only); return err })
			checkTokens(t, session.New(db, session.Config{}, nil, nil), want)
			if _, prev := blobs(t, db); prev {
				t.Error("the previous tokens key is still there")
			}
		})
		t.Run("flow", func(t *testing.T) {
			err := db.Update(ctx, func(tx store.Tx) error { _, err := tx.Secret(idp.FlowCookieKeySecret, 32); return err })
			if err != nil {
				t.Fatal(err)
			}
			leaked, _ := readFlowKeys(t, db)
			ps := newPausingStore(db, idp.FlowCookieKeySecret)
			only := keys.Options{Only: []keys.Kind{keys.Flow}}
			whilePaused(t, ps,
				func() error { _, err := keys.Rotate(ctx, ps, only); return err },
				func() error { _, err := keys.Rotate(ctx, db, only); return err })
			cur, prev := readFlowKeys(t, db)
			if bytes.Equal(prev, leaked) || bytes.Equal(cur, leaked) {
				t.Error("after two rotations, the key before both is still in the store")
			}
			if prev == nil || bytes.Equal(cur, prev) {
				t.Errorf("after two rotations: previous key kept %v, same as the current %v", prev != nil, bytes.Equal(cur, prev))
			}
		})
		t.Run("finish", func(t *testing.T) {
			before, _ := readFlowKeys(t, db)
			ps := newPausingStore(db, idp.FlowCookieKeySecret)
			whilePaused(t, ps,
				func() error {
					_, err := keys.Rotate(ctx, ps, keys.Options{Only: []keys.Kind{keys.Flow}})
					return err
				},
				func() error { _, err := keys.Finish(ctx, db, keys.Options{}); return err })
			// The finish came second: it deleted what the rotation kept.
			if cur, prev := readFlowKeys(t, db); prev != nil || bytes.Equal(cur, before) {
				t.Errorf("after a rotation, then a finish: previous key kept %v, current key the old one %v", prev != nil, bytes.Equal(cur, before))
			}
		})
	})
}

// TestResealKeepsAKeyRotatedMeanwhile: a re-seal's final pass found
// nothing to seal again; meanwhile another run (a second `keys finish`)
// finished first and deleted the previous key, and a rotation made the
// key that had sealed every blob the previous one. The first run then
// deleted that key, which no pass of its own had looked for, and no
// session's tokens opened. It deletes the previous key only if it is the
// one its pass began with, and otherwise seals again.
func TestResealKeepsAKeyRotatedMeanwhile(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		m := session.New(db, session.Config{}, nil, nil)
		want := signIns(t, db, m, 2)
		var once sync.Once
		progress := func(p session.ResealProgress) {
			if p.Pass < 2 || p.Scanned < p.Sessions {
				return
			}
			once.Do(func() {
				// Another run finishes (deletes the previous key) ...
				if _, err := session.Reseal(ctx, db, session.ResealOptions{}); err != nil {
					t.Error(err)
				}
				// ... and another rotation of the tokens key commits,
				// its re-seal still to run.
				err := db.Update(ctx, func(tx store.Tx) error {
					if err := session.LockKeys(tx); err != nil {
						return err
					}
					_, err := session.RotateTokensKey(tx)
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		rep, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Tokens},
			Reseal: session.ResealOptions{Batch: 1, Progress: progress}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Tokens.Passes < 3 || !rep.Tokens.PreviousDeleted {
			t.Errorf("re-seal %+v: want another pass after the rotation meanwhile, then the previous key deleted", rep.Tokens)
		}
		checkTokens(t, session.New(db, session.Config{}, nil, nil), want)
	})
}

// TestFinishAfter: the time the rotation gives for its finish is the flow
// cookies' lifetime after every running instance has taken the new key
// (idp.FlowKeyRecheckInterval): one that sealed with the old key until
// then made cookies that live the login timeout.
func TestFinishAfter(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		opt := keys.Options{Only: []keys.Kind{keys.Flow}, Now: func() time.Time { return now }}
		if _, err := keys.Rotate(context.Background(), db, opt); err != nil { // the store's first key
			t.Fatal(err)
		}
		rep, err := keys.Rotate(context.Background(), db, opt)
		if err != nil {
			t.Fatal(err)
		}
		if want := now.Add(11 * time.Minute); !rep.FlowPreviousKept || !rep.FinishAfter.Equal(want) {
			t.Errorf("finish after %v (kept %v), want %v", rep.FinishAfter, rep.FlowPreviousKept, want)
		}
	})
}

// TestThreeRotationsTakeTurns: two rotations wait for a third's commit;
// when it commits, the row each waited on is gone (session.LockKeys'
// delete finds nothing), and each tries again on the row the third wrote:
// one takes it, and the other waits for that one in turn instead of both
// going on at once.
func TestThreeRotationsTakeTurns(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		only := keys.Options{Only: []keys.Kind{keys.Flow}}
		if _, err := keys.Rotate(ctx, db, only); err != nil { // the store's first flow key
			t.Fatal(err)
		}
		first := newPausingStore(db, idp.FlowCookieKeySecret)
		then := newPausingStore(db, idp.FlowCookieKeySecret) // pauses the first of the other two
		errs := make(chan error, 3)
		go func() { _, err := keys.Rotate(ctx, first, only); errs <- err }()
		<-first.paused
		for range 2 {
			go func() { _, err := keys.Rotate(ctx, then, only); errs <- err }()
		}
		time.Sleep(300 * time.Millisecond) // both wait for the first (on bbolt, for its write lock)
		close(first.resume)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		<-then.paused
		select {
		case err := <-errs:
			t.Errorf("a rotation finished while another held the keys it was moving (%v)", err)
			errs <- err
		case <-time.After(300 * time.Millisecond):
		}
		close(then.resume)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
}
