package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster (pgtest) when the tests end.
func TestMain(m *testing.M) { pgtest.Main(m) }

// backends runs fn on a real bbolt file and on a real PostgreSQL database.
func backends(t *testing.T, fn func(t *testing.T, db store.Store)) {
	t.Run("bolt", func(t *testing.T) {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.NewDatabase(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		fn(t, db)
	})
}

// signIns makes n sessions with sealed tokens, as sign-ins do, and returns
// their hashes and tokens.
func signIns(t *testing.T, db store.Store, m *session.Manager, n int) map[string]*session.Tokens {
	t.Helper()
	out := map[string]*session.Tokens{}
	for i := range n {
		u := &store.User{Email: fmt.Sprintf("u%d@example.com", i), Active: true, Source: store.SourceJIT}
		tok := &session.Tokens{IDToken: fmt.Sprintf("id-token-%d", i), RefreshToken: fmt.Sprintf("rt-%d", i)}
		ns, err := m.Prepare("okta", store.LogoutInfo{Subject: fmt.Sprint(i)}, tok)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(context.Background(), func(tx store.Tx) error {
			if err := tx.PutUser(u); err != nil {
				return err
			}
			return ns.Write(tx, u)
		})
		if err != nil {
			t.Fatal(err)
		}
		out[ns.Session.Hash] = tok
	}
	return out
}

// blobs returns every session's sealed blob and whether the previous
// tokens key is in the store.
func blobs(t *testing.T, db store.Store) (map[string][]byte, bool) {
	t.Helper()
	out := map[string][]byte{}
	var prev bool
	err := db.View(context.Background(), func(tx store.Tx) error {
		var hashes []string
		if err := tx.ForEachSession("", func(s *store.Session) error { hashes = append(hashes, s.Hash); return nil }); err != nil {
			return err
		}
		for _, h := range hashes {
			b, err := tx.SessionTokens(h)
			if err != nil {
				return err
			}
			out[h] = b
		}
		_, err := tx.LoadOrStoreSecret(session.TokensKeyPrevious, nil)
		prev = err == nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, prev
}

func checkTokens(t *testing.T, m *session.Manager, want map[string]*session.Tokens) {
	t.Helper()
	for h, w := range want {
		got, err := m.Tokens(context.Background(), h)
		if err != nil || got == nil || got.IDToken != w.IDToken || got.RefreshToken != w.RefreshToken {
			t.Errorf("tokens of %.8s: %+v, %v; want %+v", h, got, err, w)
		}
	}
}

// TestRotateTokens: a session's tokens sealed before the rotation open
// after it, each blob is sealed again (under the new key: the previous one
// is gone, and it still opens), and the rotation is audited without a
// key's value.
func TestRotateTokens(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		m := session.New(db, session.Config{}, nil, nil)
		want := signIns(t, db, m, 5)
		before, _ := blobs(t, db)
		var oldKey []byte
		_ = db.View(ctx, func(tx store.Tx) (err error) {
			oldKey, err = tx.LoadOrStoreSecret(session.TokensKeySecret, nil)
			return err
		})

		rep, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Tokens}, By: account.ByAdmin, Via: "test",
			Reseal: session.ResealOptions{Batch: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Tokens == nil || rep.Tokens.Resealed != 5 || !rep.Tokens.PreviousDeleted || rep.ResealResumed {
			t.Fatalf("report %+v, tokens %+v; want 5 sealed again and the previous key deleted", rep, rep.Tokens)
		}
		after, prev := blobs(t, db)
		if prev {
			t.Error("the previous tokens key is still in the store")
		}
		for h, b := range before {
			if bytes.Equal(b, after[h]) {
				t.Errorf("the blob of %.8s was not sealed again", h)
			}
		}
		checkTokens(t, m, want)
		var newKey []byte
		_ = db.View(ctx, func(tx store.Tx) (err error) {
			newKey, err = tx.LoadOrStoreSecret(session.TokensKeySecret, nil)
			return err
		})
		if bytes.Equal(oldKey, newKey) {
			t.Error("the tokens key is the same after the rotation")
		}

		var events []store.Event
		_ = db.View(ctx, func(tx store.Tx) (err error) {
			events, err = tx.AuditEvents(store.AuditQuery{Type: account.EventStoreKeysRotated})
			return err
		})
		if len(events) != 1 || events[0].Detail["keys"] != "tokens" || events[0].Detail["step"] != keys.StepRotate || events[0].Reason != account.ByAdmin {
			t.Fatalf("audit events %+v", events)
		}
		for k, v := range events[0].Detail {
			if strings.Contains(v, string(oldKey)) || strings.Contains(v, string(newKey)) || len(v) > 40 {
				t.Errorf("audit detail %s=%q may hold a key", k, v)
			}
		}
	})
}

// TestResealInterrupted: a re-seal stopped after its first batch leaves
// the previous key, every session's tokens still open, and the same
// rotation run again finishes it without rotating anew.
func TestResealInterrupted(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		m := session.New(db, session.Config{}, nil, nil)
		want := signIns(t, db, m, 4)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		opt := keys.Options{By: account.ByAdmin, Via: "test",
			Reseal: session.ResealOptions{Batch: 1, Progress: func(session.ResealProgress) { cancel() }}}
		rep, err := keys.Rotate(ctx, db, opt)
		if !errors.Is(err, keys.ErrResealUnfinished) || rep == nil || rep.Tokens.Resealed == 0 || rep.Tokens.Resealed == 4 {
			t.Fatalf("interrupted: %+v, %v; want ErrResealUnfinished after some, not all", rep, err)
		}
		if _, prev := blobs(t, db); !prev {
			t.Fatal("the previous key is gone after an interrupted re-seal")
		}
		checkTokens(t, m, want) // some under the new key, some under the previous

		var flowBefore []byte
		_ = db.View(context.Background(), func(tx store.Tx) (err error) {
			flowBefore, err = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret, nil)
			return err
		})
		opt.Reseal.Progress = nil
		rep, err = keys.Rotate(context.Background(), db, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.ResealResumed || len(rep.Rotated) != 0 || !rep.Tokens.PreviousDeleted || rep.Tokens.Resealed == 0 {
			t.Fatalf("second run: %+v tokens %+v; want the re-seal finished and nothing rotated anew", rep, rep.Tokens)
		}
		if _, prev := blobs(t, db); prev {
			t.Error("the previous key is still there")
		}
		checkTokens(t, m, want)
		var flowAfter []byte
		_ = db.View(context.Background(), func(tx store.Tx) (err error) {
			flowAfter, err = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret, nil)
			return err
		})
		if !bytes.Equal(flowBefore, flowAfter) {
			t.Error("the second run rotated the flow key again")
		}
	})
}

// TestRotateFlowAndFinish: the flow key's predecessor is kept until
// Finish, and the next rotation replaces it.
func TestRotateFlowAndFinish(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		read := func() (cur, prev []byte) {
			_ = db.View(ctx, func(tx store.Tx) error {
				cur, _ = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret, nil)
				prev, _ = tx.LoadOrStoreSecret(idp.FlowCookieKeySecret+idp.PreviousKeySuffix, nil)
				return nil
			})
			return cur, prev
		}
		if err := db.Update(ctx, func(tx store.Tx) error { _, err := tx.Secret(idp.FlowCookieKeySecret, 32); return err }); err != nil {
			t.Fatal(err)
		}
		k0, _ := read()
		only := keys.Options{Only: []keys.Kind{keys.Flow}}
		if rep, err := keys.Rotate(ctx, db, only); err != nil || !rep.FlowPreviousKept || rep.Tokens != nil {
			t.Fatalf("%+v %v", rep, err)
		}
		k1, p1 := read()
		if !bytes.Equal(p1, k0) || bytes.Equal(k1, k0) || len(k1) != 32 {
			t.Fatal("after a rotation the previous flow key is not the one before, or the current one is not new")
		}
		if _, err := keys.Rotate(ctx, db, only); err != nil {
			t.Fatal(err)
		}
		if k2, p2 := read(); !bytes.Equal(p2, k1) || bytes.Equal(k2, k1) {
			t.Fatal("the next rotation did not replace the previous flow key")
		}
		rep, err := keys.Finish(ctx, db, keys.Options{})
		if err != nil || !rep.FlowPreviousDeleted {
			t.Fatalf("finish: %+v %v", rep, err)
		}
		if _, p := read(); p != nil {
			t.Fatal("the previous flow key is still there after finish")
		}
	})
}

func TestParseKinds(t *testing.T) {
	got, err := keys.ParseKinds([]string{"upstream-jwt,flow", "flow"})
	if err != nil || len(got) != 2 || got[0] != keys.Flow || got[1] != keys.UpstreamJWT {
		t.Errorf("%v %v", got, err)
	}
	if _, err := keys.ParseKinds([]string{"saml"}); err == nil {
		t.Error("an unknown kind was accepted")
	}
	if all, _ := keys.ParseKinds(nil); len(all) != 3 {
		t.Errorf("no --only: %v", all)
	}
}
