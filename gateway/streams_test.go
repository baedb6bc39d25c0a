package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// upstreamFunc is the rest of a route, as a function.
type upstreamFunc func(http.ResponseWriter, *http.Request) error

func (f upstreamFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// streamWorld is a route admitting group "admins", over a real store, with
// one signed-in admin.
type streamWorld struct {
	db   *bolt.DB
	run  *gateway.Runtime
	rt   *gateway.Route
	user *store.User
	id   *session.Identity
	logs *observer.ObservedLogs
}

func newStreamWorld(t *testing.T, cacheTTL time.Duration) *streamWorld {
	t.Helper()
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{CacheTTL: cacheTTL}, nil, nil)
	policy, err := gateway.NewAccessPolicy([]gateway.AccessRule{{Kind: "group", Values: []string{"admins"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	w := &streamWorld{
		db:   db,
		run:  &gateway.Runtime{Store: db, Sessions: m, Streams: gateway.NewStreams(m)},
		rt:   &gateway.Route{IdPs: []*gateway.IdP{{Name: "okta"}}, Access: policy, Logger: zap.New(core)},
		user: &store.User{Email: "ada@example.com", Groups: []string{"admins"}, Active: true, Source: store.SourceJIT},
		logs: logs,
	}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(w.user) }); err != nil {
		t.Fatal(err)
	}
	token, _, err := m.Create(ctx, w.user, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if w.id, err = m.Resolve(ctx, token); err != nil {
		t.Fatal(err)
	}
	return w
}

// open serves an event stream of the signed-in user until its context
// ends; the returned channel gets the context's cause then.
func (w *streamWorld) open(t *testing.T) <-chan error {
	t.Helper()
	opened, ended := make(chan struct{}), make(chan error, 1)
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	r.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithCancel(r.Context())
	t.Cleanup(cancel)
	go func() {
		_ = w.rt.ServeSignedIn(httptest.NewRecorder(), r.WithContext(ctx), upstreamFunc(func(_ http.ResponseWriter, r *http.Request) error {
			close(opened)
			<-r.Context().Done()
			ended <- context.Cause(r.Context())
			return nil
		}), w.run, w.id)
	}()
	<-opened
	return ended
}

// setUser changes the signed-in user in the store, as SCIM, the admin API
// or the offline CLI would.
func (w *streamWorld) setUser(t *testing.T, change func(u *store.User)) {
	t.Helper()
	err := w.db.Update(context.Background(), func(tx store.Tx) error {
		u, err := tx.User(w.user.ID)
		if err != nil {
			return err
		}
		change(u)
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func endsWithin(t *testing.T, ended <-chan error, d time.Duration) {
	t.Helper()
	select {
	case err := <-ended:
		if !errors.Is(err, gateway.ErrStreamEnded) {
			t.Errorf("stream ended by %v, want ErrStreamEnded", err)
		}
	case <-time.After(d):
		t.Fatalf("stream still open %v later", d)
	}
}

func staysOpen(t *testing.T, ended <-chan error, d time.Duration) {
	t.Helper()
	select {
	case err := <-ended:
		t.Fatalf("stream ended (%v), want it open", err)
	case <-time.After(d):
	}
}

// TestStreamEndsWhenTheRouteNoLongerAdmitsIt: a stream of a user whose
// groups change so that the route's rules refuse her ends as soon as the
// Manager forgets her (SCIM and the admin API do); another user's change
// leaves it open.
func TestStreamEndsWhenTheRouteNoLongerAdmitsIt(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	ended := w.open(t)
	w.run.Sessions.ForgetUser("someone-else")
	w.setUser(t, func(u *store.User) { u.Groups = []string{"admins", "eng"} })
	w.run.Sessions.ForgetUser(w.user.ID)
	staysOpen(t, ended, 300*time.Millisecond)

	w.setUser(t, func(u *store.User) { u.Groups = []string{"eng"} })
	w.run.Sessions.ForgetUser(w.user.ID)
	endsWithin(t, ended, 5*time.Second)
	if n := w.logs.FilterMessage("ended a stream: the route's rules no longer admit its session").Len(); n != 1 {
		t.Errorf("logged %d times, want once:\n%v", n, w.logs.All())
	}
}

// TestStreamCheckedWithoutWord: a change no one tells the Manager of (the
// offline CLI, a broadcast lost) still ends the stream, at its periodic
// check (every session cache TTL).
func TestStreamCheckedWithoutWord(t *testing.T) {
	w := newStreamWorld(t, 200*time.Millisecond)
	ended := w.open(t)
	staysOpen(t, ended, 500*time.Millisecond) // checked twice, still valid
	w.setUser(t, func(u *store.User) { u.Active = false })
	endsWithin(t, ended, 5*time.Second)
}

// TestStreamOutlivesAStoreOutage: a store that cannot be read leaves the
// stream open (an outage must not cut every stream), and the check is
// logged.
func TestStreamOutlivesAStoreOutage(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	ended := w.open(t)
	if err := w.db.Close(); err != nil {
		t.Fatal(err)
	}
	w.run.Sessions.ForgetUser(w.user.ID)
	// The check runs in its own goroutine: wait for its log line rather
	// than a fixed time a loaded machine may not give it, then see the
	// stream still open after it.
	for deadline := time.Now().Add(10 * time.Second); w.logs.FilterMessage("checking a stream's session").Len() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the failed check was not logged: %v", w.logs.All())
		}
	}
	staysOpen(t, ended, 200*time.Millisecond)
}

// TestIsStream: the requests whose answer outlives a page are told apart
// by what they ask for; pages and fetches are not tracked.
func TestIsStream(t *testing.T) {
	for _, tt := range []struct {
		name   string
		method string
		header []string
		stream bool
	}{
		{"page", http.MethodGet, []string{"Accept", "text/html"}, false},
		{"fetch", http.MethodGet, []string{"Accept", "*/*"}, false},
		{"WebSocket over HTTP/1.1", http.MethodGet, []string{"Connection", "Upgrade", "Upgrade", "websocket"}, true},
		{"WebSocket over HTTP/2", http.MethodConnect, nil, true},
		{"EventSource", http.MethodGet, []string{"Accept", "text/event-stream"}, true},
	} {
		r := httptest.NewRequest(tt.method, "/x", nil)
		for i := 0; i+1 < len(tt.header); i += 2 {
			r.Header.Set(tt.header[i], tt.header[i+1])
		}
		if got := gateway.IsStream(r); got != tt.stream {
			t.Errorf("%s: IsStream = %v, want %v", tt.name, got, tt.stream)
		}
	}
}

// TestEventStreamKnownByItsAnswer: an event stream asked for without
// saying so (fetch, curl) is tracked once its answer says what it is, and
// when its session ends the app's next write fails, so that the proxy
// stops; an ordinary answer is not tracked.
func TestEventStreamKnownByItsAnswer(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	wrote := serveEventStream(w, "text/event-stream; charset=utf-8")
	w.setUser(t, func(u *store.User) { u.Active = false })
	w.run.Sessions.ForgetUser(w.user.ID)
	streamEnded(t, wrote)
}

// serveEventStream serves a fetch (Accept: */*) to an app that answers an
// event stream of contentType, writing a tick every 10 ms until a write
// fails. It returns once the app has answered, with the channel the
// failed write's error comes on.
func serveEventStream(w *streamWorld, contentType string) <-chan error {
	return serveEventStreamBy(w, contentType, func(rw http.ResponseWriter) error {
		_, err := rw.Write([]byte("data: tick\n\n"))
		return err
	})
}

// serveEventStreamBy is serveEventStream with the app writing each tick
// by write.
func serveEventStreamBy(w *streamWorld, contentType string, write func(http.ResponseWriter) error) <-chan error {
	wrote, started := make(chan error, 1), make(chan struct{})
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	r.Header.Set("Accept", "*/*") // fetch: it does not say it wants a stream
	go func() {
		_ = w.rt.ServeSignedIn(httptest.NewRecorder(), r, upstreamFunc(func(rw http.ResponseWriter, _ *http.Request) error {
			rw.Header().Set("Content-Type", contentType)
			close(started)
			for {
				if err := write(rw); err != nil {
					wrote <- err
					return nil
				}
				time.Sleep(10 * time.Millisecond)
			}
		}), w.run, w.id)
	}()
	<-started
	return wrote
}

// streamEnded waits up to 5 s for the app's write to fail with
// ErrStreamEnded, as it must once the stream's session has ended.
func streamEnded(t *testing.T, wrote <-chan error) {
	t.Helper()
	select {
	case err := <-wrote:
		if !errors.Is(err, gateway.ErrStreamEnded) {
			t.Errorf("the app's write failed with %v, want ErrStreamEnded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the app could still write 5s after the session ended")
	}
}

// TestStreamForgottenOnceAnswered: a stream, announced by the request or
// known by its answer, is no longer tracked once the app has returned: its
// session's end, seen by a word or by the periodic check, ends nothing and
// logs no stream's end (nor touches a writer, and a connection, no longer
// the app's), and a retirement finds no stream to end.
func TestStreamForgottenOnceAnswered(t *testing.T) {
	for _, accept := range []string{"text/event-stream", "*/*"} {
		t.Run(accept, func(t *testing.T) {
			w := newStreamWorld(t, 50*time.Millisecond)
			r := httptest.NewRequest(http.MethodGet, "/events", nil)
			r.Header.Set("Accept", accept)
			err := w.rt.ServeSignedIn(httptest.NewRecorder(), r, upstreamFunc(func(rw http.ResponseWriter, _ *http.Request) error {
				rw.Header().Set("Content-Type", "text/event-stream")
				_, err := rw.Write([]byte("data: last\n\n"))
				return err
			}), w.run, w.id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.run.Sessions.SignOutHash(context.Background(), w.id.SessionHash); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // several periodic checks
			if n := w.logs.FilterMessageSnippet("ended a stream").Len(); n != 0 {
				t.Errorf("%d streams ended after the only one had been answered, want 0", n)
			}
			if n := w.run.Streams.Close(); n != 0 {
				t.Errorf("the config's retirement ended %d streams after the only one had been answered, want 0", n)
			}
		})
	}
}
