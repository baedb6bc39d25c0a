package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
// after it, each blob is sealed again under the new key, the previous key
// is kept until the finish (a sign-in may seal under it as the rotation
// commits: TestSignInAcrossRotationKeepsTokens), which deletes it, each
// blob still opening; both are audited without a key's value.
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
		if rep.Tokens == nil || rep.Tokens.Resealed != 5 || rep.Tokens.PreviousDeleted || !rep.TokensPreviousKept || rep.FinishAfter.IsZero() {
			t.Fatalf("report %+v, tokens %+v; want 5 sealed again and the previous key kept until finish", rep, rep.Tokens)
		}
		after, prev := blobs(t, db)
		if !prev {
			t.Error("the previous tokens key is gone before the finish")
		}
		for h, b := range before {
			if bytes.Equal(b, after[h]) {
				t.Errorf("the blob of %.8s was not sealed again", h)
			}
		}
		checkTokens(t, m, want)

		fin, err := keys.Finish(ctx, db, keys.Options{Early: true, By: account.ByAdmin, Via: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if !fin.TokensPreviousFound || fin.Tokens == nil || fin.Tokens.Resealed != 0 || !fin.Tokens.PreviousDeleted {
			t.Fatalf("finish %+v, tokens %+v; want nothing left to seal again and the previous key deleted", fin, fin.Tokens)
		}
		if again, prev := blobs(t, db); prev {
			t.Error("the previous tokens key is still in the store after the finish")
		} else {
			for h, b := range after {
				if !bytes.Equal(b, again[h]) {
					t.Errorf("the finish sealed the blob of %.8s again, which the new key opened", h)
				}
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
		var steps []string
		for _, e := range events {
			steps = append(steps, e.Detail["step"]+":"+e.Detail["keys"])
			if e.Reason != account.ByAdmin {
				t.Errorf("audit event %+v", e)
			}
			for k, v := range e.Detail {
				if strings.Contains(v, string(oldKey)) || strings.Contains(v, string(newKey)) || len(v) > 40 {
					t.Errorf("audit detail %s=%q may hold a key", k, v)
				}
			}
		}
		if got := strings.Join(steps, " "); got != keys.StepRotate+":tokens "+keys.StepFinish+":flow,tokens" {
			t.Fatalf("audited steps %q", got)
		}
	})
}

// TestResealInterrupted: a re-seal stopped after its first batch leaves
// the previous key, every session's tokens still open. A rotation of the
// tokens key before the finish is refused (ErrFinishFirst), rotating
// nothing (it would lose the previous key, still needed), while one that
// leaves the tokens out goes on; the finish seals the rest again and
// deletes the previous key.
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

		flowBefore, _ := readFlowKeys(t, db)
		before, _ := blobs(t, db)
		opt.Reseal.Progress = nil
		rep, err = keys.Rotate(context.Background(), db, opt)
		if !errors.Is(err, keys.ErrFinishFirst) || rep != nil {
			t.Fatalf("a second rotation before the finish: %+v, %v; want ErrFinishFirst", rep, err)
		}
		if flowAfter, _ := readFlowKeys(t, db); !bytes.Equal(flowBefore, flowAfter) {
			t.Error("the refused rotation rotated the flow key")
		}
		if after, prev := blobs(t, db); !prev || fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("the refused rotation changed the tokens (previous key kept %v)", prev)
		}
		rep, err = keys.Rotate(context.Background(), db, keys.Options{Only: []keys.Kind{keys.Flow, keys.UpstreamJWT}})
		if err != nil || len(rep.Rotated) != 2 || rep.Tokens != nil {
			t.Fatalf("a rotation leaving the tokens out, before the finish: %+v, %v", rep, err)
		}

		opt.Early = true
		rep, err = keys.Finish(context.Background(), db, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.TokensPreviousFound || !rep.Tokens.PreviousDeleted || rep.Tokens.Resealed == 0 {
			t.Fatalf("finish: %+v tokens %+v; want the re-seal finished and the previous key deleted", rep, rep.Tokens)
		}
		if _, prev := blobs(t, db); prev {
			t.Error("the previous key is still there")
		}
		checkTokens(t, m, want)
		if _, err := keys.Rotate(context.Background(), db, opt); err != nil {
			t.Errorf("a rotation after the finish: %v", err)
		}
	})
}

// TestRotateFlowAndFinish: the flow key's predecessor is kept until
// Finish, and the next rotation replaces it; Finish before the time the
// rotation gave is refused unless Early.
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
		rotatedAt := time.Now().Truncate(time.Second) // the finish time is kept to the second
		at := func(t time.Time) func() time.Time { return func() time.Time { return t } }
		second, err := keys.Rotate(ctx, db, keys.Options{Only: only.Only, Now: at(rotatedAt)})
		if err != nil {
			t.Fatal(err)
		}
		if k2, p2 := read(); !bytes.Equal(p2, k1) || bytes.Equal(k2, k1) {
			t.Fatal("the next rotation did not replace the previous flow key")
		}
		if want := rotatedAt.Add(idp.FlowKeyRecheckInterval + idp.DefaultLoginTimeout); !second.FinishAfter.Equal(want) {
			t.Fatalf("finish after %v, want %v", second.FinishAfter, want)
		}
		// Before that time the finish is refused, deleting nothing: a
		// sign-in begun before the rotation may still be in progress.
		early, err := keys.Finish(ctx, db, keys.Options{Now: at(second.FinishAfter.Add(-time.Minute))})
		if !errors.Is(err, keys.ErrTooEarly) || early != nil || !strings.Contains(err.Error(), "(in 1m0s)") {
			t.Fatalf("finish a minute early: %+v, %v; want ErrTooEarly", early, err)
		}
		if _, p := read(); p == nil {
			t.Fatal("the refused finish deleted the previous flow key")
		}
		rep, err := keys.Finish(ctx, db, keys.Options{Now: at(second.FinishAfter)})
		if err != nil || !rep.FlowPreviousDeleted {
			t.Fatalf("finish on time: %+v %v", rep, err)
		}
		if _, p := read(); p != nil {
			t.Fatal("the previous flow key is still there after finish")
		}
		// A rotation the finish ended sets no time for the next finish.
		if _, err := keys.Finish(ctx, db, keys.Options{Now: at(rotatedAt)}); err != nil {
			t.Fatalf("a finish with nothing left to finish: %v", err)
		}
		// --now finishes before the time.
		if _, err := keys.Rotate(ctx, db, keys.Options{Only: only.Only, Now: at(rotatedAt)}); err != nil {
			t.Fatal(err)
		}
		if rep, err := keys.Finish(ctx, db, keys.Options{Early: true, Now: at(rotatedAt)}); err != nil || !rep.FlowPreviousDeleted {
			t.Fatalf("an early finish: %+v %v", rep, err)
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
