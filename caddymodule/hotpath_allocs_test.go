package caddymodule

import (
	"math"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestHotPathAllocations pins what the sso handler allocates on a
// signed-in request (docs/architecture.md, "Performance budgets"), over
// what the server's own request costs (hotPath.request): on the request
// to the app, the Cookie line rebuilt without the session cookie between
// two of the app's (gateway.StripOwnCookies) and the writer that adds
// Cache-Control (gateway.ServeSignedIn); on a forward-auth request, the
// same Cookie line and the one array of the answer's header values
// (gateway.Route.Verify). The answer's header map is the test's, big
// enough already, so its growth (the server's map) is not counted. A new
// allocation on these paths fails here: cut it, or raise the figure here
// and in README's Performance section with the reason.
func TestHotPathAllocations(t *testing.T) {
	hp := newHotPath(t)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	w := &headerWriter{h: make(http.Header, 32)}
	const runs = 200
	// Rounded: a background goroutine of the runtime or the store that
	// allocates once during the runs adds 1/runs to the average.
	allocs := func(serve func(*http.Request) error, request func() *http.Request) float64 {
		return math.Round(testing.AllocsPerRun(runs, func() {
			clear(w.h)
			w.status = 0
			if err := serve(request()); err != nil {
				t.Fatal(err)
			}
		}))
	}
	bare := allocs(func(r *http.Request) error { return next.ServeHTTP(w, r) }, hp.request)
	for _, tc := range []struct {
		name string
		h    *Handler
		want float64
	}{
		{"sso", hp.sso, 2},
		{"sso+rules", hp.ruled, 2},
		{"sso+jwt", hp.signed, 2},
		{"sso+tokens", hp.withTokens, 2},
	} {
		got := allocs(func(r *http.Request) error { return tc.h.ServeHTTP(w, r, next) }, hp.request) - bare
		if got != tc.want {
			t.Errorf("%s: %v allocations over the request's own, want %v", tc.name, got, tc.want)
		}
	}

	asked := allocs(func(*http.Request) error { return nil }, hp.verifyRequest)
	got := allocs(func(r *http.Request) error { return hp.verify.ServeHTTP(w, r, next) }, hp.verifyRequest) - asked
	if w.status != http.StatusOK || w.h.Get("Cookie") != "theme=dark; lang=en" || w.h.Get("X-Forwarded-Email") != "ada@example.com" {
		t.Fatalf("verify answered %d, %v", w.status, w.h)
	}
	if want := 2.0; got != want {
		t.Errorf("verify: %v allocations over the request's own, want %v", got, want)
	}
}

// headerWriter is a ResponseWriter that keeps only the answer's status and
// headers, in a map the test reuses.
type headerWriter struct {
	h      http.Header
	status int
}

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) WriteHeader(status int)      { w.status = status }
func (w *headerWriter) Write(b []byte) (int, error) { return len(b), nil }
