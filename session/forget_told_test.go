package session_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// countingBroadcaster is a store whose broadcasts are counted.
type countingBroadcaster struct {
	store.Store
	sent atomic.Int32
}

func (c *countingBroadcaster) Broadcast(context.Context, store.Invalidation) error {
	c.sent.Add(1)
	return nil
}
func (c *countingBroadcaster) Listen(context.Context, func(store.Invalidation)) {}

// TestForgetBroadcastsUnlessTold: Forget tells the other instances
// after the commit when the transaction did not (told false: a store
// whose Tx cannot, or a notice PostgreSQL refused), and not when it did.
func TestForgetBroadcastsUnlessTold(t *testing.T) {
	db := backendtest.OpenBolt(t)
	bc := &countingBroadcaster{Store: db}
	m := session.New(bc, session.Config{}, nil, nil)
	inv := store.Invalidation{Users: []string{"u1"}}
	m.Forget(inv, false)
	if n := bc.sent.Load(); n != 1 {
		t.Errorf("Forget(told false): %d broadcasts, want 1 (the other instances would keep stale sessions)", n)
	}
	m.Forget(inv, true)
	if n := bc.sent.Load(); n != 1 {
		t.Errorf("Forget(told true): %d broadcasts in all, want still 1 (the commit told them)", n)
	}
}

// atCommitStore is a countingBroadcaster whose transactions can tell the
// other instances at their commit (store.TxBroadcaster), as PostgreSQL's
// do; what they were given to tell is recorded.
type atCommitStore struct {
	countingBroadcaster
	atCommit []store.Invalidation
}

type atCommitTx struct {
	store.Tx
	s *atCommitStore
}

func (tx atCommitTx) BroadcastAtCommit(inv store.Invalidation) (bool, error) {
	tx.s.atCommit = append(tx.s.atCommit, inv)
	return true, nil
}

func (s *atCommitStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(atCommitTx{tx, s}) })
}

// TestTellAtCommitHandsTheNoticeToTheTransaction: over a shared store whose
// transactions can tell the other instances at their commit, a sign-in's
// stale sessions and users go with its commit (one commit, no broadcast
// after it); an empty invalidation is not sent, and over a store no other
// instance shares nothing is told.
func TestTellAtCommitHandsTheNoticeToTheTransaction(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	st := &atCommitStore{countingBroadcaster: countingBroadcaster{Store: db}}
	m := session.New(st, session.Config{}, nil, nil)
	inv := store.Invalidation{Sessions: []string{session.Hash("previous")}, Users: []string{"u1"}}
	for _, c := range []struct {
		name string
		m    *session.Manager
		inv  store.Invalidation
		told bool
	}{
		{"shared store", m, inv, true},
		{"nothing to tell", m, store.Invalidation{}, false},
		{"unshared store", session.New(struct{ store.Store }{st}, session.Config{}, nil, nil), inv, false},
	} {
		st.atCommit = nil
		st.sent.Store(0)
		var told bool
		err := st.Update(ctx, func(tx store.Tx) error {
			var err error
			told, err = c.m.TellAtCommit(tx, c.inv)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if told != c.told {
			t.Errorf("%s: TellAtCommit = %v, want %v", c.name, told, c.told)
		}
		if c.told && (len(st.atCommit) != 1 || !slices.Equal(st.atCommit[0].Sessions, inv.Sessions) || !slices.Equal(st.atCommit[0].Users, inv.Users)) {
			t.Errorf("%s: the transaction was given %+v to tell, want %+v", c.name, st.atCommit, inv)
		}
		if !c.told && len(st.atCommit) != 0 {
			t.Errorf("%s: the transaction was given %+v to tell, want nothing", c.name, st.atCommit)
		}
		c.m.Forget(c.inv, told)
		if want := int32(0); c.told && st.sent.Load() != want {
			t.Errorf("%s: %d broadcasts after the commit that told, want none", c.name, st.sent.Load())
		}
	}
}
