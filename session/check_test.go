package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestCheckIsNotAUse: Check, which what outlives a request (a WebSocket
// held open by a background tab) calls, tells whether the session is
// valid without counting as a use of it: the session still ends at its
// idle timeout, and Check then reports it ended. Whether the session was
// cached or read from the store makes no difference.
func TestCheckIsNotAUse(t *testing.T) {
	for _, cached := range []bool{true, false} {
		ctx := context.Background()
		db := backendtest.OpenBolt(t)
		clk := newClock()
		cfg := session.Config{IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute, CacheTTL: time.Hour}
		if !cached {
			cfg.CacheTTL = time.Second // every Check reads the store
		}
		m := session.New(db, cfg, nil, clk.now)
		token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Resolve(ctx, token); err != nil {
			t.Fatal(err)
		}
		for range 4 { // +12 min: past the idle timeout and the stored time's lag
			clk.advance(3 * time.Minute)
			if err := m.Flush(ctx, false); err != nil {
				t.Fatal(err)
			}
			id, err := m.Check(ctx, s.Hash)
			if clk.now().Sub(s.Created) < 10*time.Minute && (err != nil || id.UserID != s.UserID) {
				t.Fatalf("cached=%v: Check %v after sign-in: %v, %v", cached, clk.now().Sub(s.Created), id, err)
			}
		}
		clk.advance(2 * time.Minute) // +14 min: past the lag allowed for another instance's use too
		if _, err := m.Check(ctx, s.Hash); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("cached=%v: Check of a session unused for 14 minutes: %v, want ErrNoSession", cached, err)
		}
		if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("cached=%v: Resolve after Checks only: %v, want ErrNoSession (idle)", cached, err)
		}
	}
}

// TestForgottenTold: Forgotten hears of a user the Manager forgets (a
// change committed elsewhere) and of a session it ends.
func TestForgottenTold(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	var told []store.Invalidation
	m.Forgotten = func(inv store.Invalidation) { told = append(told, inv) }
	u := addUser(t, db, activeUser())
	token, s, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	m.ForgetUser(u.ID)
	if _, err := m.Revoke(ctx, token, store.EventSessionLoggedOut); err != nil {
		t.Fatal(err)
	}
	var users, sessions int
	for _, inv := range told {
		for _, id := range inv.Users {
			if id == u.ID {
				users++
			}
		}
		for _, h := range inv.Sessions {
			if h == s.Hash {
				sessions++
			}
		}
	}
	if users != 1 || sessions == 0 {
		t.Errorf("told %+v: user %d times, session %d times; want the user once and the session", told, users, sessions)
	}
}

// TestCheckKeepsAnotherInstancesUse: a session used on instance A, not
// yet flushed, and checked on instance B (a stream there; A and B share
// the store) is judged on B
// as Resolve judges it, allowing for A's unflushed use: B's next request
// 45 s after the use is admitted. Checks that cached the stored time as
// the last use ended it there, two minutes early.
func TestCheckKeepsAnotherInstancesUse(t *testing.T) {
	ctx := context.Background()
	db := shared(backendtest.OpenBolt(t))
	clk := newClock()
	cfg := session.Config{IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute, CacheTTL: 30 * time.Second}
	a, b := session.New(db, cfg, nil, clk.now), session.New(db, cfg, nil, clk.now)
	token, s, err := a.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(9*time.Minute + 30*time.Second)
	if _, err := a.Resolve(ctx, token); err != nil { // used on A, not flushed
		t.Fatal(err)
	}
	clk.advance(40 * time.Second) // 10m10s after the stored time
	for range 2 {                 // two streams of the session on B
		if _, err := b.Check(ctx, s.Hash); err != nil {
			t.Fatalf("Check on B 40s after a use on A: %v", err)
		}
	}
	clk.advance(5 * time.Second)
	if _, err := b.Resolve(ctx, token); err != nil {
		t.Errorf("a request on B 45s after a use on A: %v", err)
	}
}

// TestTouch: a use that came by another way than a request (input on a
// WebSocket) keeps the session from its idle timeout, but does not bring
// back one already idle past it.
func TestTouch(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	m := session.New(db, session.Config{IdleTimeout: 10 * time.Minute, CacheTTL: time.Hour}, nil, clk.now)
	token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	for range 3 { // 27 minutes of input, no request
		clk.advance(9 * time.Minute)
		m.Touch(ctx, s.Hash)
	}
	clk.advance(9 * time.Minute)
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatalf("9 minutes after the last input: %v", err)
	}
	clk.advance(11 * time.Minute)
	m.Touch(ctx, s.Hash) // input after the session idled out
	if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("input 11 minutes after the last use brought the session back: %v", err)
	}
}

// TestTouchAfterTheCacheDroppedIt: input on a WebSocket keeps its session
// from the idle timeout even after the cache dropped the session (its
// user changed, say), which the stream's own checks do not bring back.
func TestTouchAfterTheCacheDroppedIt(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	clk := newClock()
	cfg := session.Config{IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute, CacheTTL: 30 * time.Second}
	m := session.New(db, cfg, nil, clk.now)
	u := addUser(t, db, activeUser())
	token, s, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	m.ForgetUser(u.ID) // a profile change: the cache drops the session
	for range 24 {     // 12 minutes of input, checks, flushes, no request
		clk.advance(30 * time.Second)
		m.Touch(ctx, s.Hash)
		if _, err := m.Check(ctx, s.Hash); err != nil {
			t.Fatalf("Check after %v of input: %v", clk.now().Sub(s.Created), err)
		}
		if err := m.Flush(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
}
