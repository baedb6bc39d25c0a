package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
)

// What an answer to a signed-in request gets when the app sets no
// Cache-Control of its own. Without one a browser may keep such an answer
// and show it again without asking after the session has ended (a page
// with only Last-Modified is cached heuristically, for a tenth of its
// age), its back button may show the last page from the back/forward
// cache, and a shared cache in front of the site may hand one person's
// page to the next (docs/security.md, "Browser caches"). mod_auth_mellon
// sends a Cache-Control on protected answers by default too. An app that
// sets its own, or a `header Cache-Control …` before sso, keeps it.
const (
	// PrivateCacheControl is for everything but pages: no shared cache
	// keeps it, and the browser asks again, through the gateway, before
	// each reuse (a 304 when nothing changed), so scripts, styles and
	// images of the app stay cheap.
	PrivateCacheControl = "private, no-cache"
	// PageCacheControl is for what the browser opens as a page (a
	// navigation, a frame), HTML, and an answer of no type yet, which
	// the server may sniff as HTML: not kept at all, which also keeps the
	// page out of the back/forward cache once the session cookie is gone
	// (Chromium restores a no-store page only while the cookies are
	// unchanged), so the back button after signing out asks the gateway.
	// An app's own Cache-Control without no-store (Rails' "max-age=0,
	// private, must-revalidate") leaves its pages in both caches: the
	// sign-out's Clear-Site-Data empties them (clearBrowser).
	PageCacheControl = "no-store"
)

// Upstream is the rest of the route after sso (caddyhttp.Handler).
type Upstream interface {
	ServeHTTP(http.ResponseWriter, *http.Request) error
}

// servePrivate serves r by next, adding PageCacheControl or
// PrivateCacheControl to the answer when it has no Cache-Control. The
// writer is not pooled: a handler that kept it past its return (a timer's
// flush, say) must never write into another request's answer.
func servePrivate(w http.ResponseWriter, r *http.Request, next Upstream) error {
	return next.ServeHTTP(&privateWriter{ResponseWriter: w, req: r.Header}, r)
}

// ServeSignedIn serves r, of the session id that rt admitted, by next:
// through servePrivate, and, for a stream (IsStream), through run's
// Streams, which end it with its session.
func (rt *Route) ServeSignedIn(w http.ResponseWriter, r *http.Request, next Upstream, run *Runtime, id *session.Identity) error {
	if run.Streams == nil {
		return servePrivate(w, r, next)
	}
	if IsStream(r) {
		return run.Streams.Serve(w, r, next, rt, id)
	}
	// An event stream asked for without saying so (fetch, curl: most
	// servers send one whatever Accept says) is known by its answer.
	pw := &privateWriter{ResponseWriter: w, req: r.Header}
	pw.answer.streams, pw.answer.route, pw.answer.id = run.Streams, rt, id
	defer pw.returned()
	return next.ServeHTTP(pw, r)
}

// openedAsPage reports whether the browser shows the answer as a page of
// its own (a navigation, a frame), whatever its type: a PDF or a JSON
// answer opened so comes back with the back button as a page does.
func openedAsPage(h http.Header) bool {
	dest := h.Get("Sec-Fetch-Dest")
	return dest == "document" || frameDest(dest) || h.Get("Sec-Fetch-Mode") == "navigate"
}

// privateWriter adds the header at the answer's final status line. It
// passes on what Caddy's handlers look for in a writer: Unwrap for
// http.ResponseController, and Flush, Hijack and ReadFrom (sendfile) for
// those that assert them directly.
type privateWriter struct {
	http.ResponseWriter
	req   http.Header // the request's, read only when the app sets no Cache-Control
	wrote bool
	// answer, once its streams is set, tracks the answer as a stream if
	// it turns out to be an event stream (Route.ServeSignedIn).
	answer watchedAnswer
	// input, for a stream the request announced (Streams.Serve), records
	// what the browser sends on the connection a WebSocket takes over.
	input *streamInput
}

// watchedAnswer is what a privateWriter needs to track its answer as a
// stream: ending it cuts the answer (privateWriter.cut).
type watchedAnswer struct {
	streams *Streams
	route   *Route
	id      *session.Identity
	stream  *stream // once tracked; the handler's goroutine only

	ended atomic.Bool // cut: what the app writes from now on fails
}

func (w *privateWriter) WriteHeader(status int) {
	// Not on a 304: its headers replace the stored copy's (RFC 9111,
	// 4.3.4), which has its own already, and the 304 of a script or style
	// carries no Content-Type (net/http drops it), so it would read as a
	// page and its no-store would evict the copy it revalidates.
	if !w.wrote && status >= 200 && status != http.StatusNotModified {
		w.wrote = true
		h := w.Header()
		contentType := h.Get("Content-Type")
		if len(h["Cache-Control"]) == 0 {
			// A slice of its own: a `header` directive's replace edits
			// values in place.
			h["Cache-Control"] = []string{cacheControlFor(openedAsPage(w.req), contentType)}
		}
		if w.answer.streams != nil && isEventStream(contentType) {
			w.answer.stream = w.answer.streams.track(w.answer.route, w.answer.id, w.cut)
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

// isEventStream reports whether contentType is an event stream's.
func isEventStream(ct string) bool {
	return len(ct) >= len("text/event-stream") && strings.EqualFold(ct[:len("text/event-stream")], "text/event-stream")
}

// cut ends a tracked answer whose session has ended: what the app writes
// from now on fails (reverse_proxy then stops copying and closes the
// upstream's answer), and a write under way or to come fails at once on
// the connection's write deadline (HTTP/2 resets the stream). It runs
// under the stream's lock (stream.end), never after returned.
func (w *privateWriter) cut(error) {
	w.answer.ended.Store(true)
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now())
}

// returned stops tracking the answer once the handler has returned. An
// answer that was never tracked (nearly all) costs nothing here.
func (w *privateWriter) returned() {
	if w.answer.stream != nil {
		w.answer.streams.remove(w.answer.stream)
	}
}

// cacheControlFor is PageCacheControl for a page (opened as one, or typed
// as one), PrivateCacheControl for anything else.
func cacheControlFor(page bool, contentType string) string {
	if page {
		return PageCacheControl
	}
	mediaType, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(mediaType)) {
	case "", "text/html", "application/xhtml+xml":
		return PageCacheControl
	}
	return PrivateCacheControl
}

func (w *privateWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.answer.ended.Load() {
		return 0, ErrStreamEnded
	}
	return w.ResponseWriter.Write(b)
}

func (w *privateWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.answer.ended.Load() {
		return 0, ErrStreamEnded
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, r)
}

// writerOnly hides a writer's ReadFrom from io.Copy, which would call it
// again.
type writerOnly struct{ io.Writer }

func (w *privateWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls: its error (a
// client gone) must reach the handler that flushes (Caddy's HTTP/2
// WebSocket copier stops on it).
func (w *privateWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.answer.ended.Load() {
		return ErrStreamEnded
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *privateWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.input != nil {
		conn = &inputConn{Conn: conn, in: w.input}
	}
	return conn, brw, err
}

func (w *privateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
