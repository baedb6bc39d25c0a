package session_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

func storedSession(t *testing.T, db store.Store, hash string) *store.Session {
	t.Helper()
	var s *store.Session
	if err := db.View(context.Background(), func(tx store.Tx) error {
		var err error
		s, err = tx.Session(hash)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEndsAgreesWithRequests: Ends judges a stored session as a request
// with its cookie on an instance that has not seen it would: past the
// lifetime (a shortened one too) or idle past the timeout plus the
// stored last-seen time's lag, and not a moment before. That instance is
// another one sharing the store, or, over a store none shares, this
// process after a restart or reload: it started after the stored time
// was written, so the store may miss uses (a process that crashed before
// its final flush) and the lag is allowed for too.
func TestEndsAgreesWithRequests(t *testing.T) {
	lag := 2 * session.DefaultTouchInterval
	tests := []struct {
		cfg   session.Config
		after time.Duration
		ended bool
	}{
		{session.Config{}, 30 * time.Minute, false},
		{session.Config{}, time.Hour + lag - time.Second, false},
		{session.Config{}, time.Hour + lag, true},
		{session.Config{IdleTimeout: -1}, 8*time.Hour - time.Second, false},
		{session.Config{IdleTimeout: -1}, 8 * time.Hour, true},
		// Signed in under 8h, judged after a reload to 1h.
		{session.Config{Lifetime: time.Hour, IdleTimeout: -1}, time.Hour - time.Second, false},
		{session.Config{Lifetime: time.Hour, IdleTimeout: -1}, time.Hour, true},
	}
	for _, tt := range tests {
		for _, over := range []struct {
			name  string
			store func(store.Store) store.Store
		}{
			{"restarted", func(db store.Store) store.Store { return db }},
			{"shared", shared},
		} {
			t.Run(fmt.Sprintf("%s/%+v/%v", over.name, tt.cfg, tt.after), func(t *testing.T) {
				endsAgreesWithRequests(t, over.store(backendtest.OpenBolt(t)), tt.cfg, tt.after, tt.ended)
			})
		}
	}
}

// endsAgreesWithRequests is one case of TestEndsAgreesWithRequests, over db.
func endsAgreesWithRequests(t *testing.T, db store.Store, cfg session.Config, after time.Duration, wantEnded bool) {
	ctx := context.Background()
	c := newClock()
	created := c.now()
	u := addUser(t, db, activeUser())
	token, s, err := session.New(db, session.Config{}, nil, c.now).Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	c.advance(after)
	m := session.New(db, cfg, nil, c.now)
	lifetime := cfg.WithDefaults().Lifetime
	end, ended := m.Ends(storedSession(t, db, s.Hash))
	if want := created.Add(min(lifetime, session.DefaultLifetime)); !end.Equal(want) {
		t.Errorf("end %v, want %v", end, want)
	}
	if ended != wantEnded {
		t.Errorf("ended %v, want %v", ended, wantEnded)
	}
	_, err = m.Resolve(ctx, token)
	if refused := errors.Is(err, session.ErrNoSession); refused != ended {
		t.Errorf("Ends says ended=%v, a request: %v", ended, err)
	}
}

// TestEndsCountsUsesInMemory: a use this instance remembers and has not
// written yet keeps the session live, as it keeps it for requests.
func TestEndsCountsUsesInMemory(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := newClock()
	m := session.New(db, session.Config{}, nil, c.now)
	u := addUser(t, db, activeUser())
	token, s, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // a use every 20 minutes, none flushed
		c.advance(20 * time.Minute)
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(10 * time.Minute)
	stored := storedSession(t, db, s.Hash)
	if !stored.LastSeen.Equal(s.LastSeen) {
		t.Fatalf("last seen was written (%v): the test means nothing", stored.LastSeen)
	}
	if _, ended := m.Ends(stored); ended {
		t.Error("a session used 10 minutes ago on this instance is judged ended by its stored last-seen time")
	}
	if _, ended := session.New(db, session.Config{}, nil, c.now).Ends(stored); !ended {
		t.Error("another instance, which knows only the stored time (110 minutes old), judges it live")
	}
}
