package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestStreamEndsWithItsSession: a sign-out elsewhere (the session revoked
// by its store key, as the admin API and a back-channel logout do) ends
// the stream at once, and says why in the log.
func TestStreamEndsWithItsSession(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	ended := w.open(t)
	if _, err := w.run.Sessions.RevokeHash(context.Background(), w.id.SessionHash, store.EventSessionRevoked); err != nil {
		t.Fatal(err)
	}
	endsWithin(t, ended, 5*time.Second)
	if n := w.logs.FilterMessage("ended a stream: its session has ended").Len(); n != 1 {
		t.Errorf("logged %d times, want once:\n%v", n, w.logs.All())
	}
}

// TestStreamCheckedWhenEverythingIsForgotten: a word to forget every
// session (another instance's broadcasts were missed) checks every stream
// again, so a change made meanwhile ends it without waiting for the
// periodic check.
func TestStreamCheckedWhenEverythingIsForgotten(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	ended := w.open(t)
	w.setUser(t, func(u *store.User) { u.Active = false })
	staysOpen(t, ended, 100*time.Millisecond) // nobody said
	w.run.Sessions.Forget(store.Invalidation{All: true}, true)
	endsWithin(t, ended, 5*time.Second)
}

// TestStreamEndsAtItsSessionsEnd: a stream is checked when its session's
// lifetime runs out, not only every cache TTL, so it never outlives the
// session by a cache TTL.
func TestStreamEndsAtItsSessionsEnd(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m := session.New(db, session.Config{CacheTTL: time.Hour, Lifetime: 500 * time.Millisecond}, nil, nil)
	run := &gateway.Runtime{Store: db, Sessions: m, Streams: gateway.NewStreams(m)}
	core, _ := observer.New(zapcore.InfoLevel)
	rt := &gateway.Route{IdPs: []*gateway.IdP{{Name: "okta"}}, Logger: zap.New(core)}
	u := &store.User{Email: "ada@example.com", Active: true, Source: store.SourceJIT}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	token, _, err := m.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Resolve(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	opened, ended := make(chan struct{}), make(chan error, 1)
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	r.Header.Set("Accept", "text/event-stream")
	rctx, cancel := context.WithCancel(r.Context())
	t.Cleanup(cancel)
	go func() {
		_ = rt.ServeSignedIn(httptest.NewRecorder(), r.WithContext(rctx), upstreamFunc(func(_ http.ResponseWriter, r *http.Request) error {
			close(opened)
			<-r.Context().Done()
			ended <- context.Cause(r.Context())
			return nil
		}), run, id)
	}()
	<-opened
	endsWithin(t, ended, 5*time.Second)
}
