package keys_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
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
// wrote: for the tokens key, a rotation not finished yet, which it
// refuses to rotate again (keys.ErrFinishFirst). bbolt has one writer: the
// test holds there too.
func TestConcurrentRotationsTakeTurns(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		t.Run("tokens", func(t *testing.T) {
			m := session.New(db, session.Config{}, nil, nil)
			want := signIns(t, db, m, 3)
			ps := newPausingStore(db, session.TokensKeySecret)
			only := keys.Options{Only: []keys.Kind{keys.Tokens}}
			var second error
			whilePaused(t, ps,
				func() error { _, err := keys.Rotate(ctx, ps, only); return err },
				func() error {
					if _, second = keys.Rotate(ctx, db, only); errors.Is(second, keys.ErrFinishFirst) {
						return nil
					}
					return second
				})
			if !errors.Is(second, keys.ErrFinishFirst) {
				t.Errorf("the second rotation, before the first's finish: %v; want ErrFinishFirst", second)
			}
			checkTokens(t, session.New(db, session.Config{}, nil, nil), want)
			if _, err := keys.Finish(ctx, db, keys.Options{Early: true}); err != nil {
				t.Fatal(err)
			}
			checkTokens(t, session.New(db, session.Config{}, nil, nil), want)
			if _, prev := blobs(t, db); prev {
				t.Error("the previous tokens key is still there after the finish")
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
				func() error { _, err := keys.Finish(ctx, db, keys.Options{Early: true}); return err })
			// The finish came second: it deleted what the rotation kept.
			if cur, prev := readFlowKeys(t, db); prev != nil || bytes.Equal(cur, before) {
				t.Errorf("after a rotation, then a finish: previous key kept %v, current key the old one %v", prev != nil, bytes.Equal(cur, before))
			}
		})
	})
}

// TestResealKeepsAKeyRotatedMeanwhile: a finish's re-seal's final pass
// found nothing to seal again; meanwhile another run (a second `keys
// finish`) finished first and deleted the previous key, and a rotation
// made the key that had sealed every blob the previous one. The first run
// then deleted that key, which no pass of its own had looked for, and no
// session's tokens opened; deleting it at once after that rotation would
// also lose a blob a sign-in sealed under it as the rotation committed
// (TestSignInAcrossRotationKeepsTokens). It deletes the previous key only
// if it is the one its pass began with, and otherwise keeps it for that
// rotation's finish.
func TestResealKeepsAKeyRotatedMeanwhile(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		m := session.New(db, session.Config{}, nil, nil)
		want := signIns(t, db, m, 2)
		if _, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Tokens}}); err != nil {
			t.Fatal(err)
		}
		var (
			once    sync.Once
			rotated []byte // the key the rotation meanwhile made previous
		)
		progress := func(p session.ResealProgress) {
			if p.Scanned < p.Sessions {
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
					if _, err := session.RotateTokensKey(tx); err != nil {
						return err
					}
					var err error
					rotated, err = tx.LoadOrStoreSecret(session.TokensKeyPrevious, nil)
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		rep, err := keys.Finish(ctx, db, keys.Options{Early: true, Reseal: session.ResealOptions{Batch: 1, Progress: progress}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Tokens.PreviousDeleted || !rep.Tokens.PreviousReplaced {
			t.Errorf("re-seal %+v: want the previous key, replaced meanwhile, kept", rep.Tokens)
		}
		var prev []byte
		_ = db.View(ctx, func(tx store.Tx) (err error) {
			prev, err = tx.LoadOrStoreSecret(session.TokensKeyPrevious, nil)
			return err
		})
		if rotated == nil || !bytes.Equal(prev, rotated) {
			t.Error("the finish deleted the previous key of the rotation meanwhile")
		}
		checkTokens(t, session.New(db, session.Config{}, nil, nil), want)
		// That rotation's own finish seals again and deletes it.
		if rep, err = keys.Finish(ctx, db, keys.Options{Early: true}); err != nil || rep.Tokens == nil || !rep.Tokens.PreviousDeleted || rep.Tokens.Resealed != 2 {
			t.Fatalf("the next finish: %+v, %v", rep, err)
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

// pausingSignIn pauses a sign-in's transaction right after it wrote its
// sealed tokens, before its commit.
type pausingSignIn struct {
	store.Tx
	paused, resume chan struct{}
}

func (t *pausingSignIn) PutSessionTokens(hash string, blob []byte) error {
	err := t.Tx.PutSessionTokens(hash, blob)
	close(t.paused)
	<-t.resume
	return err
}

// TestSignInAcrossRotationKeepsTokens: on PostgreSQL (read committed), a
// sign-in that read the tokens key just before `keys rotate` committed
// writes its blob, sealed under that key, uncommitted: the re-seal cannot
// see it, and deleted the key once it found nothing under it; the sign-in
// then committed tokens no key opened (no id_token_hint at logout, the
// refresh token lost). The rotation now keeps the previous key, and the
// finish, long after such a sign-in committed, seals its blob again before
// deleting it. bbolt has one writer: the sign-in would hold the rotation
// back, so the race cannot happen there.
func TestSignInAcrossRotationKeepsTokens(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{DSN: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m := session.New(db, session.Config{}, nil, nil)
	want := signIns(t, db, m, 1) // the store has its first tokens key

	u := &store.User{Email: "late@example.com", Active: true, Source: store.SourceJIT}
	tok := &session.Tokens{IDToken: "id-token-late", RefreshToken: "rt-late"}
	ns, err := m.Prepare("okta", store.LogoutInfo{Subject: "late"}, tok)
	if err != nil {
		t.Fatal(err)
	}
	want[ns.Session.Hash] = tok
	ptx := &pausingSignIn{paused: make(chan struct{}), resume: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		first := true
		done <- db.Update(ctx, func(tx store.Tx) error {
			if err := tx.PutUser(u); err != nil {
				return err
			}
			if first { // a retry, if any, does not pause
				first = false
				ptx.Tx = tx
				return ns.Write(ptx, u)
			}
			return ns.Write(tx, u)
		})
	}()
	<-ptx.paused
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := keys.Rotate(rctx, db, keys.Options{Only: []keys.Kind{keys.Tokens}})
	close(ptx.resume)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if !rep.TokensPreviousKept || rep.Tokens.PreviousDeleted || rep.Tokens.Resealed != 1 {
		t.Errorf("rotation %+v, tokens %+v; want the one committed session sealed again, the previous key kept", rep, rep.Tokens)
	}
	checkTokens(t, session.New(db, session.Config{}, nil, nil), want)

	fin, err := keys.Finish(ctx, db, keys.Options{Early: true})
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	if fin.Tokens == nil || fin.Tokens.Resealed != 1 || !fin.Tokens.PreviousDeleted {
		t.Errorf("finish %+v; want the late sign-in's blob sealed again, then the previous key deleted", fin.Tokens)
	}
	checkTokens(t, session.New(db, session.Config{}, nil, nil), want)
}
