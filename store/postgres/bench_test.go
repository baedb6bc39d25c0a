package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// The benchmarks compare the two backends in one run, bolt first, on the
// same machine. PostgreSQL runs with its durable defaults here (pgtest
// turns fsync off only for tests), so both pay for real commits:
//
//	go test -run '^$' -bench 'SignIn|Resolve$' -benchtime 2s ./store/postgres/
//	go test -run '^$' -bench ResolveCached -benchtime 9x ./store/postgres/

// backends opens one store of each kind for b.
func backends(b *testing.B) []struct {
	name string
	st   store.Store
} {
	bdb, err := bolt.Open(filepath.Join(b.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bdb.Close() })
	return []struct {
		name string
		st   store.Store
	}{{"bolt", bdb}, {"postgres", openTest(b)}}
}

// BenchmarkSignIn is a storm of first sign-ins: concurrent JIT creations
// of new users, each the transaction provision.LoginAndGrant runs (look up
// the link, the email, the userName; create the user; audit it) plus the
// session write, committed together. It reports sign-ins per second, and
// for PostgreSQL how often a transaction reran after a serialization
// failure.
func BenchmarkSignIn(b *testing.B) {
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			prov := &provision.Provisioner{Store: be.st}
			sessions := session.New(be.st, session.Config{}, nil, nil)
			rules := provision.Rules{JIT: true, Update: provision.UpdateForce}
			var seq atomic.Int64
			var reruns0 uint64
			if db, ok := be.st.(*DB); ok {
				reruns0 = db.Reruns()
			}
			b.SetParallelism(8) // sign-ins wait on commits, not CPU
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					prof := mapping.Profile{UniqueUserID: fmt.Sprintf("sub-%s-%d", be.name, i), FirstName: "New", LastName: fmt.Sprint("User", i),
						Email: fmt.Sprintf("user%d@example.com", i), Groups: []string{"staff"}, HasGroups: true}
					n, err := sessions.Prepare("okta", store.LogoutInfo{Subject: prof.UniqueUserID}, nil)
					if err != nil {
						b.Error(err)
						return
					}
					_, err = prov.LoginAndGrant(ctx, "okta", rules, prof, true, n.Write)
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signins/s")
			if db, ok := be.st.(*DB); ok {
				b.ReportMetric(float64(db.Reruns()-reruns0)/float64(b.N), "reruns/op")
			}
		})
	}
}

// signedIn makes users signed-in users in st through m and returns their
// cookie tokens.
func signedIn(b *testing.B, st store.Store, m *session.Manager, users int) []string {
	ctx := context.Background()
	tokens := make([]string, users)
	for start := 0; start < users; start += 1000 {
		err := st.Update(ctx, func(tx store.Tx) error {
			for i := start; i < min(start+1000, users); i++ {
				u := &store.User{Email: fmt.Sprintf("u%d@x.io", i), Active: true, Source: store.SourceJIT,
					Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint(i)}}}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				n, err := m.Prepare("okta", store.LogoutInfo{}, nil)
				if err != nil {
					return err
				}
				if err := n.Write(tx, u); err != nil {
					return err
				}
				tokens[i] = n.Token
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return tokens
}

const resolveUsers = 10_000

// BenchmarkResolve resolves the session cookies of 10,000 signed-in users
// by reading the session and its user from the store each time (the cache
// TTL is 1 ns): a first request on an instance, or one after the TTL.
func BenchmarkResolve(b *testing.B) {
	for _, be := range backends(b) {
		ctx := context.Background()
		tokens := signedIn(b, be.st, session.New(be.st, session.Config{}, nil, nil), resolveUsers)
		b.Run(be.name+"/uncached", func(b *testing.B) {
			m := session.New(be.st, session.Config{CacheTTL: time.Nanosecond}, nil, nil)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(seed.Add(1), 9))
				for pb.Next() {
					if _, err := m.Resolve(ctx, tokens[rng.IntN(resolveUsers)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkResolveCached is every authenticated request after the first:
// the session comes from the Manager's memory, whatever the backend. It
// alternates rounds of 200,000 resolves on a bolt-backed and a
// PostgreSQL-backed Manager (so that machine noise hits both alike) and
// reports the median ns per resolve of each and their ratio.
func BenchmarkResolveCached(b *testing.B) {
	ctx := context.Background()
	type side struct {
		name   string
		m      *session.Manager
		tokens []string
		ns     []float64
	}
	var sides []*side
	for _, be := range backends(b) {
		m := session.New(be.st, session.Config{}, nil, nil)
		s := &side{name: be.name, m: m, tokens: signedIn(b, be.st, m, resolveUsers)}
		for _, tok := range s.tokens {
			if _, err := m.Resolve(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		sides = append(sides, s)
	}
	const perRound = 200_000
	b.ResetTimer()
	for b.Loop() {
		for _, s := range sides {
			rng := rand.New(rand.NewPCG(1, 9))
			start := time.Now()
			for range perRound {
				if _, err := s.m.Resolve(ctx, s.tokens[rng.IntN(resolveUsers)]); err != nil {
					b.Fatal(err)
				}
			}
			s.ns = append(s.ns, float64(time.Since(start).Nanoseconds())/perRound)
		}
	}
	med := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for _, s := range sides {
		b.ReportMetric(med(s.ns), s.name+"-ns/resolve")
	}
	b.ReportMetric(med(sides[1].ns)/med(sides[0].ns), "postgres/bolt")
}
