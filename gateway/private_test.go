package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type upstreamFunc func(http.ResponseWriter, *http.Request) error

func (f upstreamFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// TestServePrivate: an answer to a signed-in request without a
// Cache-Control of its own gets PageCacheControl when it is a page (typed
// as one, of no type yet, or opened as one whatever its type) and
// PrivateCacheControl otherwise, however the app starts its answer; a 304
// and an answer with its own get none; the writer hands on what Caddy's
// handlers look for (Unwrap, Flush).
func TestServePrivate(t *testing.T) {
	typed := func(ct string, then func(http.ResponseWriter)) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { w.Header().Set("Content-Type", ct); then(w) }
	}
	write := func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }
	for _, tc := range []struct {
		name   string
		serve  func(w http.ResponseWriter)
		want   []string
		opened bool // Sec-Fetch-Dest: document
	}{
		{"a page, Write", typed("text/html; charset=utf-8", write), []string{PageCacheControl}, false},
		{"XHTML", typed("application/xhtml+xml", write), []string{PageCacheControl}, false},
		{"a page typed in capitals", typed("Text/HTML; charset=utf-8", write), []string{PageCacheControl}, false},
		{"no type yet", write, []string{PageCacheControl}, false},
		{"a script", typed("text/javascript", write), []string{PrivateCacheControl}, false},
		{"JSON, WriteHeader", typed("application/json", func(w http.ResponseWriter) { w.WriteHeader(http.StatusCreated) }), []string{PrivateCacheControl}, false},
		// A 304's headers replace the stored copy's: it keeps its own.
		{"a 304 (no type)", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotModified) }, nil, false},
		{"an image, ReadFrom", typed("image/png", func(w http.ResponseWriter) { _, _ = io.Copy(w, strings.NewReader("x")) }), []string{PrivateCacheControl}, false},
		{"a stream, Flush", typed("text/event-stream", func(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }), []string{PrivateCacheControl}, false},
		{"a PDF opened as a page", typed("application/pdf", write), []string{PageCacheControl}, true},
		{"JSON opened as a page", typed("application/json", write), []string{PageCacheControl}, true},
		{"the app's own", func(w http.ResponseWriter) {
			w.Header().Set("Cache-Control", "public, max-age=60")
			w.WriteHeader(http.StatusOK)
		}, []string{"public, max-age=60"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.opened {
				req.Header.Set("Sec-Fetch-Dest", "document")
				req.Header.Set("Sec-Fetch-Mode", "navigate")
			}
			err := servePrivate(rec, req, upstreamFunc(func(w http.ResponseWriter, _ *http.Request) error {
				if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok || u.Unwrap() != rec {
					t.Error("the writer does not unwrap to Caddy's")
				}
				tc.serve(w)
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.Result().Header.Values("Cache-Control"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("Cache-Control %q, want %q", got, tc.want)
			}
		})
	}
}

// TestServePrivateFlushError: a failed flush (the client gone) reaches the
// handler that flushes through http.ResponseController.
func TestServePrivateFlushError(t *testing.T) {
	gone := errors.New("client gone")
	var got error
	_ = servePrivate(failingFlusher{httptest.NewRecorder(), gone}, httptest.NewRequest(http.MethodGet, "/", nil),
		upstreamFunc(func(w http.ResponseWriter, _ *http.Request) error {
			got = http.NewResponseController(w).Flush()
			return nil
		}))
	if !errors.Is(got, gone) {
		t.Errorf("Flush through servePrivate returned %v, want %v", got, gone)
	}
}

type failingFlusher struct {
	*httptest.ResponseRecorder
	err error
}

func (f failingFlusher) FlushError() error { return f.err }

// TestServePrivateAfterEarlyHints: a 103 Early Hints before the answer
// (Link preloads) is no answer of its own: the Cache-Control is chosen at
// the final status, by the type the app sets then.
func TestServePrivateAfterEarlyHints(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = servePrivate(w, r, upstreamFunc(func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Link", "</app.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "text/javascript")
			_, err := w.Write([]byte("x"))
			return err
		}))
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/app.js")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != PrivateCacheControl {
		t.Errorf("a script answered after a 103 has Cache-Control %q, want %q", got, PrivateCacheControl)
	}
}
