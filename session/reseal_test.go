package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// rotateTokensKey rotates the tokens key as keys.Rotate does.
func rotateTokensKey(t *testing.T, db store.Store) {
	t.Helper()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		if err := session.LockKeys(tx); err != nil {
			return err
		}
		rotated, err := session.RotateTokensKey(tx)
		if err == nil && !rotated {
			t.Error("RotateTokensKey did not rotate")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestResealCountsOnlyBlobsNoKeyOpens: the finish's Reseal reports as
// unopenable (caddy sso keys finish, ResealStats.Unopenable) only the blobs
// neither key opens: not one sealed under the current key, not a plain ID
// token blob (which no key seals), and not one it sealed again. Every pass
// counts them, the final one's count is the one reported, and the blobs
// other than the previous key's are left as they were.
func TestResealCountsOnlyBlobsNoKeyOpens(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	tok := func(s string) *session.Tokens {
		return &session.Tokens{IDToken: "id-" + s, AccessToken: "at-" + s, RefreshToken: "rt-" + s}
	}
	old := signIn(t, m, db, u, tok("old")).Session.Hash
	damaged := signIn(t, m, db, u, tok("damaged")).Session.Hash
	plain := signIn(t, m, db, u, nil).Session.Hash
	rotateTokensKey(t, db)
	fresh := signIn(t, m, db, u, tok("fresh")).Session.Hash
	err := db.Update(ctx, func(tx store.Tx) error {
		blob, err := tx.SessionTokens(damaged)
		if err != nil {
			return err
		}
		blob = append([]byte(nil), blob...)
		blob[len(blob)-1] ^= 0xff // the tag no longer matches
		if err := tx.PutSessionTokens(damaged, blob); err != nil {
			return err
		}
		return tx.PutSessionTokens(plain, store.PlainIDTokenBlob("id-plain"))
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, batch := range []int{1, 2, 0} {
		if batch != 1 {
			rotateTokensKey(t, db) // again, for the next run
		}
		// Batch 1 and 2 scan the four sessions in several batches; 0 is
		// DefaultResealBatch, one batch.
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		stats, err := session.Reseal(rctx, db, session.ResealOptions{Batch: batch})
		cancel()
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		want := session.ResealStats{Resealed: 2, Unopenable: 1, Passes: 2, PreviousDeleted: true}
		if batch == 1 {
			want.Resealed = 1 // fresh was sealed under the current key
		}
		if stats != want {
			t.Errorf("batch %d: Reseal = %+v, want %+v", batch, stats, want)
		}
		err = db.View(ctx, func(tx store.Tx) error {
			if pending, err := session.ResealPending(tx); err != nil || pending {
				t.Errorf("batch %d: ResealPending = %v, %v after the finish", batch, pending, err)
			}
			for hash, want := range map[string]string{old: "at-old", fresh: "at-fresh"} {
				got, err := session.StoredTokens(tx, hash)
				if err != nil || got == nil || got.AccessToken != want {
					t.Errorf("batch %d: tokens %+v, %v; want %s", batch, got, err, want)
				}
			}
			if got, err := session.StoredTokens(tx, plain); err != nil || got == nil || got.IDToken != "id-plain" {
				t.Errorf("batch %d: plain ID token blob now %+v, %v", batch, got, err)
			}
			if _, err := session.StoredTokens(tx, damaged); err == nil {
				t.Errorf("batch %d: the damaged blob opens", batch)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRotateTokensKeyRefusesAnUnfinishedRotation: a store's first rotation
// gives it its first key (reported as a rotation); a rotation while the one
// before is unfinished (the previous key still stored) changes nothing and
// reports false, so that the blobs sealed under the key current since then
// still open; and LockKeys leaves its row in the store
// (docs/operations.md, "Rotating the store's keys").
func TestRotateTokensKeyRefusesAnUnfinishedRotation(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	rotate := func() bool {
		t.Helper()
		var rotated bool
		err := db.Update(ctx, func(tx store.Tx) error {
			if err := session.LockKeys(tx); err != nil {
				return err
			}
			var err error
			rotated, err = session.RotateTokensKey(tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return rotated
	}
	if !rotate() {
		t.Error("the first rotation of an empty store reported no rotation")
	}
	err := db.View(ctx, func(tx store.Tx) error {
		if _, err := tx.LoadOrStoreSecret(session.TokensKeySecret, nil); err != nil {
			t.Errorf("the tokens key after the first rotation: %v", err)
		}
		if _, err := tx.LoadOrStoreSecret(session.KeysLockSecret, nil); err != nil {
			t.Errorf("LockKeys' row after its transaction committed: %v, want it kept", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	before := signIn(t, m, db, u, &session.Tokens{AccessToken: "at-before"}).Session.Hash
	if !rotate() {
		t.Fatal("the second rotation reported no rotation")
	}
	between := signIn(t, m, db, u, &session.Tokens{AccessToken: "at-between"}).Session.Hash
	if rotate() {
		t.Error("a rotation while the one before is unfinished reported a rotation")
	}
	err = db.View(ctx, func(tx store.Tx) error {
		for hash, want := range map[string]string{before: "at-before", between: "at-between"} {
			got, err := session.StoredTokens(tx, hash)
			if err != nil || got == nil || got.AccessToken != want {
				t.Errorf("tokens after the refused rotation: %+v, %v; want %s", got, err, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestResealRestsBetweenBatches: Reseal pauses ResealOptions.Rest after
// each batch that sealed blobs again, so that sign-ins commit between them.
func TestResealRestsBetweenBatches(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	for range 3 {
		signIn(t, m, db, u, &session.Tokens{AccessToken: "at"})
	}
	rotateTokensKey(t, db)
	const rest = 200 * time.Millisecond
	start := time.Now()
	stats, err := session.Reseal(ctx, db, session.ResealOptions{Batch: 1, Rest: rest})
	if err != nil || stats.Resealed != 3 || !stats.PreviousDeleted {
		t.Fatalf("Reseal = %+v, %v", stats, err)
	}
	// Three batches sealed one blob each: a rest after each.
	if took := time.Since(start); took < 3*rest {
		t.Errorf("Reseal of three batches took %v, want at least three rests of %v", took, rest)
	}
}
