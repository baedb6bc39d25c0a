package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// unionPlans are two routes of one config: owner renames user to
// X-App-User and protects a token header and an identity JWT header of its
// own; sibling has the default headers and set_authorization_header.
func unionPlans(t testing.TB) (u *HeaderUnion, owner, sibling, alone *HeaderPlan) {
	t.Helper()
	plan := func(overrides map[string]string, protect ...string) *HeaderPlan {
		p, err := NewHeaderPlan("", overrides)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range protect {
			p.Protect(n)
		}
		return &p
	}
	u = new(HeaderUnion)
	owner = plan(map[string]string{"user": "X-App-User"}, "X-Upstream-At", "X-App-Identity")
	sibling = plan(nil, "Authorization")
	alone = plan(nil) // not added: its own names only
	for _, p := range []*HeaderPlan{owner, sibling} {
		if err := u.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return u, owner, sibling, alone
}

// TestHeaderUnion checks that every plan added to a HeaderUnion strips the
// names any of them protects, in any spelling, from headers, Connection
// tokens and trailers; that Authorization stays its own route's; and that
// a plan added after the first request is refused.
func TestHeaderUnion(t *testing.T) {
	u, owner, sibling, alone := unionPlans(t)
	spellings := []string{"X-App-User", "x-app-user", "X_App_User", "x.app.user", "X-UPSTREAM-AT", "x_upstream.at", "X-App-Identity", "x_app_identity"}
	inbound := func() http.Header {
		h := http.Header{"Authorization": {"Basic YWRhOnB3"}, "X-Custom": {"kept"}, "X-Forwarded-User": {"forged"}}
		for _, s := range spellings {
			h[s] = []string{"forged"}
		}
		return h
	}
	for name, p := range map[string]*HeaderPlan{"owner": owner, "sibling": sibling} {
		h := inbound()
		p.StripInbound(h)
		for _, s := range spellings {
			if _, ok := h[s]; ok {
				t.Errorf("%s: %s not stripped", name, s)
			}
		}
		if h.Get("X-Custom") != "kept" || h.Get("X-Forwarded-User") != "" {
			t.Errorf("%s: stripped to %v", name, h)
		}
		if _, ok := h["Authorization"]; ok != (p == owner) {
			t.Errorf("%s: Authorization kept = %v, want kept only where set_authorization_header is not", name, ok)
		}

		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("body"))
		r.Header["Connection"] = []string{"keep-alive, x_app_user, X.Upstream.At"}
		r.Trailer = http.Header{"X_app_user": {"forged"}, "X-App-Identity": {"forged"}, "Content-Digest": {"d"}}
		p.GuardHopByHop(r)
		if got := r.Header.Get("Connection"); got != "keep-alive" {
			t.Errorf("%s: Connection = %q, want keep-alive", name, got)
		}
		if len(r.Trailer) != 1 || r.Trailer.Get("Content-Digest") == "" {
			t.Errorf("%s: trailers = %v, want Content-Digest alone", name, r.Trailer)
		}
	}

	h := inbound()
	alone.StripInbound(h)
	if h.Get("X-App-User") != "forged" || h.Get("Authorization") == "" || h.Get("X-Forwarded-User") != "" {
		t.Errorf("a plan in no union strips its own names only: %v", h)
	}

	late, err := NewHeaderPlan("", map[string]string{"email": "X-Late-Email"})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Add(&late); err == nil {
		t.Error("a plan added after a request was served was accepted")
	}
}

// TestHeaderUnionFreezesOnce checks, under -race, that routes' first
// requests freeze the union once, concurrently, and that a request then
// allocates nothing more than without a union.
func TestHeaderUnionFreezesOnce(t *testing.T) {
	_, owner, sibling, _ := unionPlans(t)
	var wg sync.WaitGroup
	for i := range 8 {
		p := owner
		if i%2 == 1 {
			p = sibling
		}
		wg.Go(func() {
			h := http.Header{"X_app_user": {"forged"}}
			p.StripInbound(h)
			if len(h) != 0 {
				t.Errorf("not stripped: %v", h)
			}
		})
	}
	wg.Wait()
	h := http.Header{"Accept": {"*/*"}, "X-Custom": {"kept"}, "X-Forwarded-For": {"192.0.2.1"}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header["Connection"] = []string{"keep-alive"}
	if n := testing.AllocsPerRun(100, func() { sibling.StripInbound(h); sibling.GuardHopByHop(r) }); n != 0 {
		t.Errorf("StripInbound and GuardHopByHop with a union: %v allocations, want 0", n)
	}
}

// BenchmarkStripInboundUnion compares StripInbound on a navigation's
// headers for a default plan alone and for one in a frozen HeaderUnion
// with a route that renames a field and passes tokens.
//
//	go test -run '^$' -bench StripInboundUnion -benchmem ./gateway/
func BenchmarkStripInboundUnion(b *testing.B) {
	_, _, _, alone := unionPlans(b) // a default plan in no union
	inUnion, err := NewHeaderPlan("", nil)
	if err != nil {
		b.Fatal(err)
	}
	owner, err := NewHeaderPlan("", map[string]string{"user": "X-App-User"})
	if err != nil {
		b.Fatal(err)
	}
	owner.Protect("X-Upstream-At")
	u := new(HeaderUnion)
	for _, p := range []*HeaderPlan{&owner, &inUnion} {
		if err := u.Add(p); err != nil {
			b.Fatal(err)
		}
	}
	h := http.Header{
		"Accept": {"text/html"}, "Accept-Encoding": {"gzip, br"}, "Accept-Language": {"en"}, "Cookie": {"a=b"},
		"Sec-Fetch-Mode": {"navigate"}, "User-Agent": {"Mozilla/5.0"}, "X-Forwarded-For": {"192.0.2.1"},
	}
	for name, p := range map[string]*HeaderPlan{"alone": alone, "union": &inUnion} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.StripInbound(h)
			}
		})
	}
}
