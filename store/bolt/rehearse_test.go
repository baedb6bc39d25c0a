package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestRehearsalPolicy: which Updates run their fn first in a rehearsal,
// and that a rehearsal writes nothing. Background work is always
// rehearsed; a foreground Update only while the store is cold (a
// foreground write read from disk within coldWindow); never with
// NoRehearsal. A fn whose later steps fail in the rehearsal because its
// earlier writes were not made (a new user's first session) still commits
// in full, and a single-use ID is used up by the real run only.
func TestRehearsalPolicy(t *testing.T) {
	bg := store.Background(context.Background())
	fg := context.Background()
	cases := []struct {
		name  string
		opts  Options
		cold  bool
		ctx   context.Context
		wantN int // runs of fn
	}{
		{"foreground, warm store", Options{}, false, fg, 1},
		{"foreground, cold store", Options{}, true, fg, 2},
		{"background, warm store", Options{}, false, bg, 2},
		{"background, NoRehearsal", Options{NoRehearsal: true}, false, bg, 1},
		{"foreground, cold store, NoRehearsal", Options{NoRehearsal: true}, true, fg, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := Open(filepath.Join(t.TempDir(), "sso.db"), c.opts)
			must(t, err)
			defer func() { _ = db.Close() }()
			if c.cold {
				db.noteFaults(context.Background(), 1)
			}
			runs := 0
			var first bool
			err = db.Update(c.ctx, func(tx store.Tx) error {
				runs++
				var err error
				if first, err = tx.Consume("state", "s1", time.Now().Add(time.Hour)); err != nil {
					return err
				}
				u := &store.User{Email: "new@example.com", Active: true}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				if err := tx.PutSession(&store.Session{Hash: "h1", UserID: u.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
					return err
				}
				return tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: u.ID})
			})
			must(t, err)
			if runs != c.wantN {
				t.Errorf("fn ran %d times, want %d", runs, c.wantN)
			}
			// The single-use rule holds through a rehearsal: it does not
			// use the ID up (the real run still finds it unused), and the
			// real run does (a replay is refused).
			if !first {
				t.Error("the sign-in's own state was refused as already used: the rehearsal consumed it")
			}
			err = db.Update(c.ctx, func(tx store.Tx) error {
				var err error
				first, err = tx.Consume("state", "s1", time.Now().Add(time.Hour))
				return err
			})
			must(t, err)
			if first {
				t.Error("a replayed state was accepted")
			}
			view(t, db, func(tx store.Tx) error {
				n, err := tx.Counts()
				if err != nil {
					return err
				}
				if n.Users != 1 || n.Sessions != 1 || n.AuditEvents != 1 {
					t.Errorf("after the Update: %+v, want one user, session and event", n)
				}
				evs, err := tx.AuditEvents(store.AuditQuery{})
				if err == nil && (len(evs) != 1 || evs[0].Seq != 1) {
					t.Errorf("audit events %+v, want one numbered 1: a rehearsal takes no sequence number", evs)
				}
				return err
			})
		})
	}
	// Background work that reads from disk does not make foreground
	// writes rehearse; and the window closes.
	db := openTest(t)
	db.noteFaults(bg, 1)
	runs := 0
	update(t, db, func(store.Tx) error { runs++; return nil })
	if runs != 1 {
		t.Errorf("a foreground Update after background faults ran fn %d times, want 1", runs)
	}
	db.noteFaults(context.Background(), 1)
	db.coldUntil.Store(time.Now().Add(-time.Second).UnixNano())
	runs = 0
	update(t, db, func(store.Tx) error { runs++; return nil })
	if runs != 1 {
		t.Errorf("a foreground Update after the cold window ran fn %d times, want 1", runs)
	}
}
