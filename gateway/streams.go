package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// ErrStreamEnded is the cause of a stream's context when its session has
// ended, the route's rules no longer admit it, or the config that
// admitted it has retired (Streams.Close).
var ErrStreamEnded = errors.New("sso: the stream's session has ended")

// streamCheckTimeout bounds one check of a stream's session: a store that
// does not answer leaves the stream as it is until the next check.
const streamCheckTimeout = 10 * time.Second

// streamChecksAtOnce bounds the checks that read the store at the same
// time: a word to forget every session (another instance's broadcasts
// were missed) has every stream checked again, and thousands of reads at
// once would hold up sign-ins on a shared store's connection pool.
const streamChecksAtOnce = 4

// IsStream reports whether r asks for an answer that outlives a page: a
// protocol switch (a WebSocket over HTTP/1.1), an extended CONNECT (a
// WebSocket over HTTP/2 or HTTP/3, RFC 8441 and 9220), or an event stream
// (a browser's EventSource asks for text/event-stream). Such an answer can
// stay open for days, long after its session has ended (docs/security.md,
// "Streams").
func IsStream(r *http.Request) bool {
	return r.Method == http.MethodConnect || len(r.Header["Upgrade"]) > 0 ||
		strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// Streams keeps track of the streams (IsStream) the routes admitted and
// ends each once its session has ended (signed out, revoked, deactivated,
// expired) or its route's rules no longer admit it (a group removed). A
// request is checked once, when it arrives; a stream is checked again as
// soon as the session Manager forgets its session or user, here or on
// another instance's word (session.Manager.Forgotten), and at least once
// per session cache TTL (changes the Manager is not told of: the offline
// CLI, a broadcast missed); and ends them all when its config retires
// (Close). Ending a stream cancels its request's context:
// reverse_proxy then closes both of a WebSocket's connections, and stops
// copying an event stream.
type Streams struct {
	sessions *session.Manager
	every    time.Duration
	checking chan struct{} // a slot per check running (streamChecksAtOnce)
	failures logbudget.Budget

	mu        sync.Mutex
	bySession map[string]map[*stream]struct{} // by store key of the session
	byUser    map[string]map[*stream]struct{}
	// closed: the config these streams were admitted by has retired
	// (Close); a stream it admits from now on ends at once.
	closed bool
}

// NewStreams returns the Streams of the sessions of m, and tells m to
// report what it forgets to them (m.Forgotten, which must be unset).
func NewStreams(m *session.Manager) *Streams {
	s := &Streams{
		sessions:  m,
		every:     m.CacheTTL(),
		checking:  make(chan struct{}, streamChecksAtOnce),
		bySession: make(map[string]map[*stream]struct{}),
		byUser:    make(map[string]map[*stream]struct{}),
	}
	m.Forgotten = s.recheck
	return s
}

// stream is one admitted stream.
type stream struct {
	owner  *Streams
	route  *Route
	id     *session.Identity // as admitted: its session and user
	cancel func(cause error) // ends it: cancels its request's context, or cuts its answer
	// A check runs in one goroutine at a time; a request for another while
	// it runs sets pending, and the goroutine checks again.
	pending, running atomic.Bool

	mu    sync.Mutex
	timer *time.Timer // the next periodic check
	done  bool        // ended, or the request has returned
}

// Serve serves r, a stream of the session id that rt admitted, by next:
// its context ends with ErrStreamEnded as the cause when the session ends
// or rt no longer admits it.
func (s *Streams) Serve(w http.ResponseWriter, r *http.Request, next Upstream, rt *Route, id *session.Identity) error {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	defer s.remove(s.track(rt, id, cancel))
	r = r.WithContext(ctx)
	// What the browser sends on the stream (keys typed into a web
	// terminal) is a use of the session, as a request is: a WebSocket in
	// use must not end at the idle timeout. What the app sends is not: a
	// background tab's stream must.
	in := &streamInput{sessions: s.sessions, hash: id.SessionHash}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &inputBody{ReadCloser: r.Body, in: in} // a WebSocket over HTTP/2 or HTTP/3
	}
	return next.ServeHTTP(&privateWriter{ResponseWriter: w, req: r.Header, input: in}, r)
}

// streamInput records the browser's input on a stream as a use of its
// session, at most once a second.
type streamInput struct {
	sessions *session.Manager
	hash     string
	last     atomic.Int64 // unix nanos of the last use recorded
}

func (in *streamInput) saw(n int) {
	if n <= 0 {
		return
	}
	now := time.Now().UnixNano()
	if now-in.last.Load() < int64(time.Second) {
		return
	}
	in.last.Store(now)
	// Off the copy's path: a session no longer cached is read from the
	// store.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), streamCheckTimeout)
		defer cancel()
		in.sessions.Touch(ctx, in.hash)
	}()
}

// inputConn is a hijacked connection (a WebSocket over HTTP/1.1) whose
// reads are the browser's input.
type inputConn struct {
	net.Conn
	in *streamInput
}

func (c *inputConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.saw(n)
	return n, err
}

// CloseWrite passes on the half-close reverse_proxy propagates a
// WebSocket's end of input with, which the wrapper would hide.
func (c *inputConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// inputBody is a request body that is the browser's input (a WebSocket
// over HTTP/2 or HTTP/3).
type inputBody struct {
	io.ReadCloser
	in *streamInput
}

func (b *inputBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.in.saw(n)
	return n, err
}

// track starts tracking a stream of the session id that rt admitted;
// cancel ends it. The caller removes it once the request is done.
func (s *Streams) track(rt *Route, id *session.Identity, cancel func(error)) *stream {
	st := &stream{owner: s, route: rt, id: id, cancel: cancel}
	st.mu.Lock()
	st.timer = time.AfterFunc(s.nextCheck(id), st.poke)
	st.mu.Unlock()
	if !s.add(st) {
		st.end("the config that admitted it has retired")
		return st
	}
	// The session may have ended since id was resolved (while the app
	// prepared an answer known as a stream by its type), its word gone
	// before the stream was tracked: checked once now.
	st.poke()
	return st
}

// nextCheck is the time to the next periodic check of a stream of id: the
// check interval, or the session's end if that comes first.
func (s *Streams) nextCheck(id *session.Identity) time.Duration {
	return max(min(s.every, time.Until(id.Expires)), 0)
}

// add indexes st, unless s is closed: it reports whether it did.
func (s *Streams) add(st *stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	addTo(s.bySession, st.id.SessionHash, st)
	addTo(s.byUser, st.id.UserID, st)
	return true
}

// Close ends every stream s tracks, and any it is given later, and
// reports how many it ended: the config that admitted them retires
// (Live.Retire). Its rules and its session Manager are no longer the
// running config's: a reload that tightens the rules (allow group eng,
// then allow group sales) must not leave a stream checked against the
// old ones for as long as Caddy keeps the old server, which is without
// bound by default (docs/security.md, "Streams"). The client reconnects
// and meets the running config's verdict, as reverse_proxy has a
// WebSocket do at a reload. No line per stream: a reload may end
// thousands; the caller logs the count.
func (s *Streams) Close() int {
	s.mu.Lock()
	s.closed = true
	var all []*stream
	for _, set := range s.bySession {
		for st := range set {
			all = append(all, st)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, st := range all {
		if st.stop() {
			n++
		}
	}
	return n
}

func (s *Streams) remove(st *stream) {
	st.finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	removeFrom(s.bySession, st.id.SessionHash, st)
	removeFrom(s.byUser, st.id.UserID, st)
}

func addTo(index map[string]map[*stream]struct{}, key string, st *stream) {
	set := index[key]
	if set == nil {
		set = make(map[*stream]struct{})
		index[key] = set
	}
	set[st] = struct{}{}
}

func removeFrom(index map[string]map[*stream]struct{}, key string, st *stream) {
	delete(index[key], st)
	if len(index[key]) == 0 {
		delete(index, key)
	}
}

// recheck checks again the streams of what the Manager forgot.
func (s *Streams) recheck(inv store.Invalidation) {
	var due []*stream
	s.mu.Lock()
	if inv.All {
		for _, set := range s.bySession {
			for st := range set {
				due = append(due, st)
			}
		}
	}
	for _, h := range inv.Sessions {
		for st := range s.bySession[h] {
			due = append(due, st)
		}
	}
	for _, u := range inv.Users {
		for st := range s.byUser[u] {
			due = append(due, st)
		}
	}
	s.mu.Unlock()
	for _, st := range due {
		st.poke()
	}
}

// poke asks for a check of st, in a goroutine of its own.
func (st *stream) poke() {
	st.pending.Store(true)
	if st.running.CompareAndSwap(false, true) {
		go st.checks()
	}
}

func (st *stream) checks() {
	for {
		for st.pending.Swap(false) {
			st.check()
		}
		st.running.Store(false)
		if !st.pending.Load() || !st.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// check ends the stream if its session has ended or its route no longer
// admits it, and otherwise sets the next periodic check. A store error
// leaves the stream open: an outage of the store must not cut every
// stream, and the next check tries again.
func (st *stream) check() {
	if st.finished() {
		return
	}
	st.owner.checking <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), streamCheckTimeout)
	id, err := st.owner.sessions.Check(ctx, st.id.SessionHash)
	cancel()
	<-st.owner.checking
	var why string
	switch {
	case errors.Is(err, session.ErrNoSession):
		why = "its session has ended"
	case err != nil:
		// Every stream's check fails while the store is away: one line
		// a minute.
		st.owner.failures.Warn(st.route.Logger, "check", time.Now(), "checking a stream's session", zap.String("idp", st.id.IdP), zap.String("user_id", st.id.UserID), zap.Error(err))
	case !st.route.Access.Permits(id):
		// The session's IdP never changes, nor do the route's IdPs: only
		// the rules' verdict on the user can.
		why = "the route's rules no longer admit its session"
	}
	if why != "" {
		st.end(why)
		return
	}
	next := st.owner.every
	if id != nil {
		next = st.owner.nextCheck(id)
	}
	st.mu.Lock()
	if !st.done {
		st.timer.Reset(next)
	}
	st.mu.Unlock()
}

// end ends the stream for why, unless its request has returned or it has
// ended already. Under st.mu, as finish: once the request's own finish
// (Streams.remove) has returned, no check can end the answer any more,
// whose writer may then not be used. The line is logged before the end,
// so that whoever sees the stream end finds it in the log.
func (st *stream) end(why string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.finishLocked() {
		return
	}
	st.route.Logger.Info("ended a stream: "+why, zap.String("idp", st.id.IdP), zap.String("user_id", st.id.UserID))
	st.cancel(ErrStreamEnded)
}

// stop ends the stream without a line of its own (Streams.Close), and
// reports whether it was still open.
func (st *stream) stop() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.finishLocked() {
		return false
	}
	st.cancel(ErrStreamEnded)
	return true
}

// finish marks st done, with no more checks.
func (st *stream) finish() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.finishLocked()
}

// finishLocked marks st done and reports whether it was the first to.
func (st *stream) finishLocked() bool {
	if st.done {
		return false
	}
	st.done = true
	st.timer.Stop()
	return true
}

func (st *stream) finished() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.done
}
