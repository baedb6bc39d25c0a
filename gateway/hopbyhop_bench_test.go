package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkSecurityChecks isolates what the checks of docs/security.md add
// to an authenticated request: the Connection/trailer guard (a browser's
// "Connection: keep-alive", no trailers: the common case, which must not
// allocate; and a request naming an identity header, which may), finding
// every session cookie of the gateway's name, removing the gateway's
// cookies from the Cookie header forwarded upstream, and the route's IdP
// check.
//
//	go test -run '^$' -bench SecurityChecks -benchmem ./gateway/
func BenchmarkSecurityChecks(b *testing.B) {
	plan, err := NewHeaderPlan("", nil)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/app", nil)
	b.Run("guard/keep-alive", func(b *testing.B) {
		req.Header = http.Header{"Connection": {"keep-alive"}}
		b.ReportAllocs()
		for b.Loop() {
			plan.GuardHopByHop(req)
		}
	})
	b.Run("guard/identity-token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req.Header = http.Header{"Connection": {"keep-alive, X-Forwarded-User"}}
			plan.GuardHopByHop(req)
		}
	})
	b.Run("strip-inbound", func(b *testing.B) {
		// Names that pass the first-byte and length checks, so has folds
		// each; none is protected, so the header stays the same.
		h := http.Header{"Accept": {"*/*"}, "User-Agent": {"Mozilla/5.0"}, "X-Forwarded-For": {"192.0.2.1"},
			"X-Forwarded-Proto": {"https"}, "X-Requested-With": {"XMLHttpRequest"}, "x_request_id": {"abc"}}
		b.ReportAllocs()
		for b.Loop() {
			plan.StripInbound(h)
		}
		if len(h) != 6 {
			b.Fatalf("StripInbound removed an unprotected header: %v", h)
		}
	})
	b.Run("cookies", func(b *testing.B) {
		h := http.Header{"Cookie": {"theme=dark; " + SessionCookiePlain + "=0123456789abcdefghijklmnopqrstuvwxyzABCDEFG; lang=en"}}
		b.ReportAllocs()
		for b.Loop() {
			var buf [MaxSessionCookies]string
			if len(CookieValues(h, SessionCookiePlain, &buf)) != 1 {
				b.Fatal("no cookie")
			}
		}
	})
	b.Run("strip-cookies", func(b *testing.B) {
		line := "theme=dark; " + SessionCookiePlain + "=0123456789abcdefghijklmnopqrstuvwxyzABCDEFG; lang=en"
		b.ReportAllocs()
		for b.Loop() {
			h := http.Header{"Cookie": {line}}
			StripOwnCookies(h)
			if h.Get("Cookie") != "theme=dark; lang=en" {
				b.Fatalf("Cookie %q", h.Get("Cookie"))
			}
		}
	})
	b.Run("admits", func(b *testing.B) {
		rt := &Route{IdPs: []*IdP{{Name: "okta"}, {Name: "entra"}}}
		b.ReportAllocs()
		for b.Loop() {
			if !rt.Admits("entra") {
				b.Fatal("not admitted")
			}
		}
	})
}
