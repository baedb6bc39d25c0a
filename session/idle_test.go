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

// TestIdleExactOnOneProcess: over a store no other instance shares (bbolt),
// every use since the Manager started is its own, so a session it signed
// in ends idle_timeout after its last use to the second, whether the
// cached copy or the store decides (past CacheTTL), with Run's flushes or
// without; Ends says the same. The 2 minutes allowed for the stored time's
// lag are for uses the store may miss, which here there are none of.
func TestIdleExactOnOneProcess(t *testing.T) {
	tests := []struct {
		idle, used, unused time.Duration // used: the last use after sign-in (0: none)
		ended              bool
	}{
		{2 * time.Minute, 0, 2*time.Minute - time.Second, false},
		{2 * time.Minute, 0, 2 * time.Minute, true},
		{2 * time.Minute, 0, 2*time.Minute + 10*time.Second, true},
		{2 * time.Minute, 0, 3*time.Minute + 59*time.Second, true},
		{2 * time.Minute, 90 * time.Second, 2*time.Minute - time.Second, false},
		{2 * time.Minute, 90 * time.Second, 2 * time.Minute, true},
		// Under CacheTTL (30 s) the cached copy decides, past it the
		// store: the same answer either way.
		{10 * time.Second, 0, 9 * time.Second, false},
		{10 * time.Second, 0, 15 * time.Second, true},
		{10 * time.Second, 0, 35 * time.Second, true},
		{10 * time.Second, 5 * time.Second, 35 * time.Second, true},
	}
	for _, tt := range tests {
		for _, flush := range []bool{false, true} {
			t.Run(fmt.Sprintf("idle %v, used at %v, unused %v, flushed %v", tt.idle, tt.used, tt.unused, flush), func(t *testing.T) {
				ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
				m := session.New(db, session.Config{IdleTimeout: tt.idle}, nil, clk.now)
				token, s, err := m.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
				if err != nil {
					t.Fatal(err)
				}
				wait := func(d time.Duration) { // as Run would: a flush a minute
					for d > 0 {
						step := min(d, time.Minute)
						clk.advance(step)
						d -= step
						if flush {
							if err := m.Flush(ctx, false); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				if tt.used > 0 {
					wait(tt.used)
					if _, err := m.Resolve(ctx, token); err != nil {
						t.Fatal(err)
					}
				}
				wait(tt.unused)
				if _, ended := m.Ends(storedSession(t, db, s.Hash)); ended != tt.ended {
					t.Errorf("Ends: ended %v, want %v", ended, tt.ended)
				}
				_, err = m.Resolve(ctx, token)
				if refused := errors.Is(err, session.ErrNoSession); refused != tt.ended {
					t.Errorf("unused for %v on the only process, idle_timeout %v: %v, want refused %v", tt.unused, tt.idle, err, tt.ended)
				}
			})
		}
	}
}

// TestIdleAfterARestartAllowsForLostUses: a process that crashed took
// the uses it had not flushed with it; the one started after it knows the
// session only from the stored time, written before it started, so it
// allows the stored time's lag (TouchInterval and a flush period, 2
// minutes) as for another instance's uses.
func TestIdleAfterARestartAllowsForLostUses(t *testing.T) {
	lag := 2 * session.DefaultTouchInterval
	for _, tt := range []struct {
		unused time.Duration // since the stored time (the sign-in)
		ended  bool
	}{
		{2*time.Minute + lag - time.Second, false},
		{2*time.Minute + lag, true},
	} {
		t.Run(tt.unused.String(), func(t *testing.T) {
			ctx, db, clk := context.Background(), backendtest.OpenBolt(t), newClock()
			cfg := session.Config{IdleTimeout: 2 * time.Minute}
			crashed := session.New(db, cfg, nil, clk.now)
			token, s, err := crashed.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			clk.advance(time.Minute)
			if _, err := crashed.Resolve(ctx, token); err != nil { // never flushed
				t.Fatal(err)
			}
			clk.advance(10 * time.Second)
			m := session.New(db, cfg, nil, clk.now) // the restart
			clk.advance(tt.unused - 70*time.Second)
			if _, ended := m.Ends(storedSession(t, db, s.Hash)); ended != tt.ended {
				t.Errorf("Ends: ended %v, want %v", ended, tt.ended)
			}
			_, err = m.Resolve(ctx, token)
			if refused := errors.Is(err, session.ErrNoSession); refused != tt.ended {
				t.Errorf("after a restart, %v after the stored time: %v, want refused %v", tt.unused, err, tt.ended)
			}
		})
	}
}

// TestIdleOverASharedStoreCountsOtherInstancesUses: two instances share
// the store (PostgreSQL), idle_timeout 10s, under CacheTTL; the user's
// requests alternate between them every 6 s (a balancer without
// stickiness). Each instance's fresh cached copy has its own last use 12 s
// back, yet the session is in use and is not ended. Unused past the idle
// timeout and the stored time's lag, it ends on both.
func TestIdleOverASharedStoreCountsOtherInstancesUses(t *testing.T) {
	ctx, db, clk := context.Background(), shared(backendtest.OpenBolt(t)), newClock()
	cfg := session.Config{IdleTimeout: 10 * time.Second}
	a, b := session.New(db, cfg, nil, clk.now), session.New(db, cfg, nil, clk.now)
	token, _, err := a.Create(ctx, addUser(t, db, activeUser()), "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	var last *session.Manager
	for i := range 30 { // 3 minutes, with Run's flushes every minute
		clk.advance(6 * time.Second)
		last = []*session.Manager{b, a}[i%2]
		if _, err := last.Resolve(ctx, token); err != nil {
			t.Fatalf("request %d, %v after sign-in, 6 s after the previous one: %v", i+1, time.Duration(i+1)*6*time.Second, err)
		}
		if i%10 == 9 {
			for _, m := range []*session.Manager{a, b} {
				if err := m.Flush(ctx, false); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	clk.advance(10*time.Second + 2*session.DefaultTouchInterval)
	other := map[*session.Manager]*session.Manager{a: b, b: a}[last]
	for i, m := range []*session.Manager{last, other} {
		if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("on %s, unused past idle_timeout and the lag: %v, want ErrNoSession",
				[]string{"the instance of the last use", "the other"}[i], err)
		}
	}
}
