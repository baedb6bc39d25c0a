package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type upstreamFunc func(http.ResponseWriter, *http.Request) error

func (f upstreamFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// TestServePrivate: an answer to a signed-in request without a
// Cache-Control of its own gets PrivateCacheControl, however the app
// starts its answer; one with its own keeps it; the writer hands on what
// Caddy's handlers look for (Unwrap, Flush).
func TestServePrivate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  []string
	}{
		{"Write", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, []string{PrivateCacheControl}},
		{"WriteHeader", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotModified) }, []string{PrivateCacheControl}},
		{"ReadFrom", func(w http.ResponseWriter) { _, _ = io.Copy(w, strings.NewReader("x")) }, []string{PrivateCacheControl}},
		{"Flush", func(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }, []string{PrivateCacheControl}},
		{"the app's own", func(w http.ResponseWriter) {
			w.Header().Set("Cache-Control", "public, max-age=60")
			w.WriteHeader(http.StatusOK)
		}, []string{"public, max-age=60"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := ServePrivate(rec, httptest.NewRequest(http.MethodGet, "/", nil), upstreamFunc(func(w http.ResponseWriter, _ *http.Request) error {
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
