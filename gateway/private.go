package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// PrivateCacheControl is what an answer to a signed-in request gets when
// the app sets no Cache-Control of its own. Without it a browser may keep
// such an answer and show it again without asking, after the session has
// ended (a page with only Last-Modified is cached heuristically, for a
// tenth of its age), and a shared cache in front of the site may hand one
// person's page to the next. "private" keeps it out of shared caches,
// "no-cache" makes the browser ask again, through the gateway, before
// each reuse (a 304 when nothing changed). mod_auth_mellon sends a
// Cache-Control on protected answers by default too. An app that sets
// its own, or a `header Cache-Control …` before sso, keeps it
// (docs/security.md, "Browser caches").
const PrivateCacheControl = "private, no-cache"

// Upstream is the rest of the route after sso (caddyhttp.Handler).
type Upstream interface {
	ServeHTTP(http.ResponseWriter, *http.Request) error
}

// ServePrivate serves r by next, adding PrivateCacheControl to the
// answer when it has no Cache-Control. The writer is not pooled: a
// handler that kept it past its return (a timer's flush, say) must never
// write into another request's answer.
func ServePrivate(w http.ResponseWriter, r *http.Request, next Upstream) error {
	return next.ServeHTTP(&privateWriter{ResponseWriter: w}, r)
}

// privateWriter adds the header at the answer's final status line. It
// passes on what Caddy's handlers look for in a writer: Unwrap for
// http.ResponseController, and Flush, Hijack and ReadFrom (sendfile) for
// those that assert them directly.
type privateWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *privateWriter) WriteHeader(status int) {
	if !w.wrote && status >= 200 {
		w.wrote = true
		if h := w.Header(); len(h["Cache-Control"]) == 0 {
			// A slice of its own: a `header` directive's replace edits
			// values in place.
			h["Cache-Control"] = []string{PrivateCacheControl}
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *privateWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *privateWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, r)
}

// writerOnly hides a writer's ReadFrom from io.Copy, which would call it
// again.
type writerOnly struct{ io.Writer }

func (w *privateWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *privateWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *privateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
