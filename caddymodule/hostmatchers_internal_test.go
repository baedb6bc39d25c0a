package caddymodule

import (
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestHostMatchersNeedOneInEverySet: a route guards the Host only when
// every one of its matcher sets has a host matcher; a set without one
// (a path matcher alone) lets any Host in, so the route vouches for none
// and its site needs base_url (docs/security.md, "Host-derived URLs").
func TestHostMatchersNeedOneInEverySet(t *testing.T) {
	host := caddyhttp.MatchHost{"app.example.com"}
	path := caddyhttp.MatchPath{"/app/*"}
	tests := []struct {
		name string
		sets caddyhttp.MatcherSets
		want int // host matchers returned; 0: nil, the route guards nothing
	}{
		{"no matcher", nil, 0},
		{"path only", caddyhttp.MatcherSets{{path}}, 0},
		{"host", caddyhttp.MatcherSets{{host, path}}, 1},
		{"host by pointer", caddyhttp.MatcherSets{{&host}}, 1},
		{"one set without host", caddyhttp.MatcherSets{{host}, {path}}, 0},
		{"two sets with hosts", caddyhttp.MatcherSets{{host}, {caddyhttp.MatchHost{"b.example.com"}}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hostMatchers(tt.sets)
			if len(got) != tt.want || (tt.want == 0 && got != nil) {
				t.Errorf("hostMatchers = %v, want %d host matchers", got, tt.want)
			}
		})
	}
}
