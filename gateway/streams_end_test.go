package gateway_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestStreamEndsWithItsSession: a sign-out elsewhere (the session revoked
// by its store key, as the admin API and a back-channel logout do) ends
// the stream at once, and says why in the log.
func TestStreamEndsWithItsSession(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	ended := w.open(t)
	if _, err := w.run.Sessions.SignOutHash(context.Background(), w.id.SessionHash); err != nil {
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
	t.Run("never checked before", func(t *testing.T) { streamEndsAtItsSessionsEnd(t, false) })
	// A check on the way (a word to forget everything) sets the next one
	// by the session's end too, not a cache TTL later.
	t.Run("checked on the way", func(t *testing.T) { streamEndsAtItsSessionsEnd(t, true) })
}

func streamEndsAtItsSessionsEnd(t *testing.T, checkedOnTheWay bool) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
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
	if checkedOnTheWay {
		m.Forget(store.Invalidation{All: true}, true)
	}
	endsWithin(t, ended, 5*time.Second)
}

// TestStreamInputKeepsItsSession: what the browser sends on a stream (keys
// typed into a web terminal) is a use of its session, as a request is, so
// a WebSocket in use does not sign its user out at the idle timeout. Both
// ways a WebSocket reaches the app count: the request body (HTTP/2 and
// HTTP/3) and the hijacked connection (HTTP/1.1).
func TestStreamInputKeepsItsSession(t *testing.T) {
	// Touches are written at most once a second: typing stalled by more
	// than two seconds on a loaded machine would still end the session.
	const idle, typing, every = 3 * time.Second, 5 * time.Second, 100 * time.Millisecond
	for _, hijack := range []bool{false, true} {
		name := map[bool]string{false: "request body", true: "hijacked connection"}[hijack]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := backendtest.OpenBolt(t)
			m := session.New(db, session.Config{CacheTTL: time.Hour, IdleTimeout: idle}, nil, nil)
			run := &gateway.Runtime{Store: db, Sessions: m, Streams: gateway.NewStreams(m)}
			rt := &gateway.Route{IdPs: []*gateway.IdP{{Name: "okta"}}, Logger: zap.NewNop()}
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
			// The app reads what the browser types until it stops.
			app := upstreamFunc(func(w http.ResponseWriter, r *http.Request) error {
				var in io.Reader = r.Body
				if hijack {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err != nil {
						return err
					}
					defer conn.Close()
					in = conn
				}
				_, err := io.Copy(io.Discard, in)
				return err
			})
			var keys io.WriteCloser
			served := make(chan error, 1)
			if hijack {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					served <- rt.ServeSignedIn(w, r, app, run, id)
				}))
				t.Cleanup(srv.Close)
				conn, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.WriteString(conn, "GET /term HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				keys = conn
			} else {
				pr, pw := io.Pipe()
				r := httptest.NewRequest(http.MethodConnect, "/term", pr) // extended CONNECT
				go func() { served <- rt.ServeSignedIn(httptest.NewRecorder(), r, app, run, id) }()
				keys = pw
			}
			for end := time.Now().Add(typing); time.Now().Before(end); time.Sleep(every) {
				if _, err := keys.Write([]byte("k")); err != nil {
					t.Fatal(err)
				}
			}
			_ = keys.Close()
			if err := <-served; err != nil {
				t.Errorf("serving the stream: %v", err)
			}
			if _, err := m.Resolve(ctx, token); err != nil {
				t.Errorf("after %v of typing on a stream (idle timeout %v), the session: %v", typing, idle, err)
			}
		})
	}
}

// TestEventStreamKnownByItsAnswerInAnyCase: a media type is
// case-insensitive (RFC 9110 8.3.1), so an app that answers
// Text/Event-Stream has its stream tracked, and ended with its session,
// as one that answers text/event-stream.
func TestEventStreamKnownByItsAnswerInAnyCase(t *testing.T) {
	for _, ct := range []string{"TEXT/EVENT-STREAM", "Text/Event-Stream;charset=utf-8"} {
		t.Run(ct, func(t *testing.T) {
			w := newStreamWorld(t, time.Hour)
			wrote := serveEventStream(w, ct)
			if _, err := w.run.Sessions.SignOutHash(context.Background(), w.id.SessionHash); err != nil {
				t.Fatal(err)
			}
			streamEnded(t, wrote)
		})
	}
}

// TestEndedEventStreamRefusesEveryWrite: once the session of an event
// stream known by its answer has ended, the app can send nothing more by
// any of the writer's ways: Write, ReadFrom (which file_server's io.Copy
// takes, as sendfile) or a flush through http.ResponseController.
func TestEndedEventStreamRefusesEveryWrite(t *testing.T) {
	tick := "data: tick\n\n"
	tests := []struct {
		name  string
		write func(http.ResponseWriter) error
	}{
		{"Write", func(rw http.ResponseWriter) error {
			_, err := rw.Write([]byte(tick))
			return err
		}},
		{"ReadFrom", func(rw http.ResponseWriter) error {
			rf, ok := rw.(io.ReaderFrom)
			if !ok {
				return errors.New("the writer has no ReadFrom")
			}
			_, err := rf.ReadFrom(strings.NewReader(tick))
			return err
		}},
		{"Flush", func(rw http.ResponseWriter) error {
			return http.NewResponseController(rw).Flush()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newStreamWorld(t, time.Hour)
			wrote := serveEventStreamBy(w, "text/event-stream", tt.write)
			if _, err := w.run.Sessions.SignOutHash(context.Background(), w.id.SessionHash); err != nil {
				t.Fatal(err)
			}
			streamEnded(t, wrote)
		})
	}
}

// TestEndedEventStreamUnblocksAWriteUnderWay: an event stream whose
// browser has stopped reading has the app's write blocked on the full
// connection; when its session ends, that write fails at once (the write
// deadline), rather than holding the answer, and the session's last
// data, open for as long as the connection stays up.
func TestEndedEventStreamUnblocksAWriteUnderWay(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	var written atomic.Int64
	failed := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_ = w.rt.ServeSignedIn(rw, r, upstreamFunc(func(rw http.ResponseWriter, _ *http.Request) error {
			rw.Header().Set("Content-Type", "text/event-stream")
			chunk := []byte("data: " + strings.Repeat("x", 64<<10) + "\n\n")
			for {
				n, err := rw.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					failed <- err
					return nil
				}
			}
		}), w.run, w.id)
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	// The browser asks, then reads nothing.
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: app.example.com\r\nAccept: */*\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Wait for the app's write to block: nothing more written for 300 ms.
	last, still := int64(-1), 0
	for deadline := time.Now().Add(10 * time.Second); still < 3; {
		if time.Now().After(deadline) {
			t.Fatal("the app's writes never blocked on the connection")
		}
		time.Sleep(100 * time.Millisecond)
		if n := written.Load(); n == last && n > 0 {
			still++
		} else {
			last, still = n, 0
		}
	}
	select {
	case err := <-failed:
		t.Fatalf("the app's write failed (%v) before the session ended", err)
	default:
	}
	if _, err := w.run.Sessions.SignOutHash(context.Background(), w.id.SessionHash); err != nil {
		t.Fatal(err)
	}
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Fatal("the app's write under way was still blocked 5s after the session ended")
	}
}

// TestEventStreamOfASessionEndedWhileTheAppAnswered: a session that ends
// while the app prepares its answer, its word gone before the answer says
// it is a stream, still ends the stream at once, not at the periodic
// check (a cache TTL later; an hour here).
func TestEventStreamOfASessionEndedWhileTheAppAnswered(t *testing.T) {
	w := newStreamWorld(t, time.Hour)
	answer, waited := make(chan struct{}), false
	wrote := serveEventStreamBy(w, "text/event-stream", func(rw http.ResponseWriter) error {
		if !waited {
			<-answer
			waited = true
		}
		_, err := rw.Write([]byte("data: tick\n\n"))
		return err
	})
	if _, err := w.run.Sessions.SignOutHash(context.Background(), w.id.SessionHash); err != nil {
		t.Fatal(err)
	}
	close(answer)
	streamEnded(t, wrote)
}
