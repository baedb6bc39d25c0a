package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestServePrivateOpenedAsPage: what the browser shows as a page of its
// own is not kept whatever its type, by either signal of the fetch
// metadata: an embedded or framed document (Sec-Fetch-Dest embed, object,
// iframe; an <embed> of a PDF is fetched in no-cors mode), and a
// navigation whose destination is not "document" (a service worker's
// navigation preload, a browser that sends no Sec-Fetch-Dest).
func TestServePrivateOpenedAsPage(t *testing.T) {
	for _, tc := range []struct {
		name, dest, mode string
		want             string
	}{
		{"a PDF in an embed", "embed", "no-cors", PageCacheControl},
		{"a PDF in an object", "object", "no-cors", PageCacheControl},
		{"JSON in an iframe", "iframe", "", PageCacheControl},
		{"a navigation without a destination", "", "navigate", PageCacheControl},
		{"a navigation sent on by a service worker", "empty", "navigate", PageCacheControl},
		{"a script's fetch", "empty", "cors", PrivateCacheControl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/doc", nil)
			if tc.dest != "" {
				req.Header.Set("Sec-Fetch-Dest", tc.dest)
			}
			if tc.mode != "" {
				req.Header.Set("Sec-Fetch-Mode", tc.mode)
			}
			rec := httptest.NewRecorder()
			err := servePrivate(rec, req, upstreamFunc(func(w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Content-Type", "application/pdf")
				_, err := w.Write([]byte("%PDF"))
				return err
			}))
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.Header().Get("Cache-Control"); got != tc.want {
				t.Errorf("Cache-Control %q, want %q", got, tc.want)
			}
		})
	}
}
