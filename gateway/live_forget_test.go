package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestLiveForgetsInTheRunningApp: what is built at Provision (SCIM, the
// admin API) drops cached sessions through Live once the app runs, so a
// user deactivated there, or a session ended there, is signed out at the
// next request, not a cache TTL later.
func TestLiveForgetsInTheRunningApp(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{CacheTTL: time.Hour}, nil, nil)
	l := gateway.NewLive()
	l.Set(&gateway.Runtime{Store: db, Sessions: m})
	l.Started()

	for _, tc := range []struct {
		name   string
		forget func(u *store.User, id *session.Identity)
	}{
		{"ForgetUsers", func(u *store.User, _ *session.Identity) { l.ForgetUsers([]string{u.ID}) }},
		{"ForgetSessions", func(_ *store.User, id *session.Identity) { l.ForgetSessions([]string{id.SessionHash}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &store.User{Email: tc.name + "@example.com", Active: true, Source: store.SourceJIT}
			if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
				t.Fatal(err)
			}
			token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
			if err != nil {
				t.Fatal(err)
			}
			id, err := m.Resolve(ctx, token) // cached from now on
			if err != nil {
				t.Fatal(err)
			}
			u.Active = false
			if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
				t.Fatal(err)
			}
			tc.forget(u, id)
			if _, err := m.Resolve(ctx, token); !errors.Is(err, session.ErrNoSession) {
				t.Errorf("a deactivated user's session after %s: %v, want ErrNoSession", tc.name, err)
			}
		})
	}
}

// TestLiveJudgesStoredEndsBeforeStart: before the app runs, the admin
// API's view of a user's sessions judges by the stored end alone: one
// past it has ended.
func TestLiveJudgesStoredEndsBeforeStart(t *testing.T) {
	l := gateway.NewLive()
	past := time.Now().Add(-time.Minute)
	if end, ended := l.SessionEnds(&store.Session{Expires: past}); !ended || !end.Equal(past) {
		t.Errorf("a session past its stored end: end %v ended %v, want %v, ended", end, ended, past)
	}
	future := time.Now().Add(time.Hour)
	if end, ended := l.SessionEnds(&store.Session{Expires: future}); ended || !end.Equal(future) {
		t.Errorf("a session before its stored end: end %v ended %v, want %v, not ended", end, ended, future)
	}
}
