package caddymodule

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// BenchmarkAuthenticatedRequestBackends is the authenticated hot path (the
// sso handler in front of a request with a valid, cached session, as in
// BenchmarkAuthenticatedRequest) on a bbolt-backed and a
// PostgreSQL-backed app (docs/cluster.md): 1,000 signed-in users each,
// requests spread over their cookies. Each round runs 100,000 requests on
// each, alternating every hundred, so that the machine's noise falls on
// both. It reports the median ns per request of each, and the median of
// the rounds' postgres/bolt ratios. PostgreSQL runs in a throwaway cluster
// (store/postgres/pgtest); without one the benchmark skips.
//
//	go test -run '^$' -bench AuthenticatedRequestBackends -benchtime 15x ./caddymodule/
func BenchmarkAuthenticatedRequestBackends(b *testing.B) {
	ctx := context.Background()
	pg, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{NoFsync: true})
	if err != nil {
		pgtest.Unavailable(b, err)
	}
	defer func() { _ = pg.Stop() }()
	dsn, err := pg.CreateDatabase(ctx, "sso")
	if err != nil {
		b.Fatal(err)
	}
	pdb, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer pdb.Close()
	bdb := backendtest.OpenBolt(b)
	plan, err := gateway.NewHeaderPlan("", nil)
	if err != nil {
		b.Fatal(err)
	}
	okta := &gateway.IdP{Name: "okta", Protocol: "oidc"}

	const users = 1000
	type side struct {
		name    string
		h       *Handler
		tokens  []string
		cookies []string // Cookie header values, built before timing
		rng     *rand.Rand
		ns      []float64
	}
	var sides []*side
	for _, be := range []struct {
		name string
		db   store.Store
	}{{"bolt", bdb}, {"postgres", pdb}} {
		// Every request is served from the cache: no entry may reach the
		// TTL (30 s by default) during the run and be read again.
		sessions := session.New(be.db, session.Config{CacheTTL: time.Hour}, nil, nil)
		sessions.Derive = placeholderLookup
		s := &side{name: be.name, h: &Handler{PathPrefix: DefaultPathPrefix, app: startedApp(b, be.db, sessions), logger: zap.NewNop(),
			route: &gateway.Route{PathPrefix: DefaultPathPrefix, IdPs: []*gateway.IdP{okta}, Default: okta, Headers: plan, Logger: zap.NewNop()}}}
		for i := range users {
			u := &store.User{Email: fmt.Sprintf("user%d@example.com", i), FirstName: "Ada", LastName: fmt.Sprint(i),
				Groups: []string{"eng", "admins"}, Active: true}
			if err := be.db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
				b.Fatal(err)
			}
			token, _, err := sessions.Create(ctx, u, "okta", store.LogoutInfo{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sessions.Resolve(ctx, token); err != nil {
				b.Fatal(err)
			}
			s.tokens = append(s.tokens, token)
		}
		sides = append(sides, s)
	}

	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	noVars := caddy.ReplacerFunc(func(string) (any, bool) { return nil, false })
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/app/page?q=1", nil)
	w := httptest.NewRecorder()
	inbound := http.Header{
		"Accept":           {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Language":  {"en-GB,en;q=0.9"},
		"Sec-Fetch-Mode":   {"navigate"},
		"User-Agent":       {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"},
		"X-Forwarded-User": {"mallory"},
	}
	for _, s := range sides {
		for _, tok := range s.tokens {
			s.cookies = append(s.cookies, "theme=dark; "+gateway.SessionCookiePlain+"="+tok)
		}
		s.rng = rand.New(rand.NewPCG(1, 9))
	}
	// Each round interleaves the two in slices of a hundred requests: on
	// a shared machine the load changes from one second to the next, and
	// slices this short see the same load.
	const slices, perSlice = 1000, 100
	var ratios []float64
	for r := 0; b.Loop(); r++ {
		spent := make([]time.Duration, len(sides))
		for range slices {
			for k, s := range sides {
				start := time.Now()
				for range perSlice {
					repl := caddy.NewReplacer()
					repl.Map(noVars)
					r := req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
					r.Header = inbound.Clone()
					// A slice of its own: the handler strips its cookie
					// from the header in place.
					r.Header["Cookie"] = []string{s.cookies[s.rng.IntN(users)]}
					if err := s.h.ServeHTTP(w, r, next); err != nil {
						b.Fatal(err)
					}
				}
				spent[k] += time.Since(start)
				if w.Body.Len() > 0 {
					b.Fatalf("%s: a request did not reach the next handler: %d %.200s", s.name, w.Code, w.Body)
				}
			}
		}
		for k, s := range sides {
			s.ns = append(s.ns, float64(spent[k].Nanoseconds())/(slices*perSlice))
		}
		ratios = append(ratios, float64(spent[1])/float64(spent[0]))
		b.Logf("round %d: bolt %.0f ns, postgres %.0f ns per request", r+1, sides[0].ns[r], sides[1].ns[r])
	}
	for _, s := range sides {
		b.ReportMetric(median(s.ns), s.name+"-ns/request")
	}
	b.ReportMetric(median(ratios), "postgres/bolt")
}

// median is the middle of a benchmark's per-round figures, which a
// slower minute of a shared machine moves less than their mean.
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
