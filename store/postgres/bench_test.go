package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
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
//	go test -run '^$' -bench 'SignIn|Resolve' -benchtime 2s ./store/postgres/

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
					n, err := sessions.Prepare("okta", store.LogoutInfo{Subject: prof.UniqueUserID})
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

// BenchmarkResolve resolves session cookies of 10,000 signed-in users.
// "cached" is every authenticated request after the first (the Manager's
// memory, whatever the backend); "uncached" reads the session and its user
// from the store each time (a first request, or one after the cache TTL).
func BenchmarkResolve(b *testing.B) {
	const users = 10_000
	for _, be := range backends(b) {
		ctx := context.Background()
		m := session.New(be.st, session.Config{}, nil, nil)
		tokens := make([]string, users)
		for start := 0; start < users; start += 1000 {
			err := be.st.Update(ctx, func(tx store.Tx) error {
				for i := start; i < start+1000; i++ {
					u := &store.User{Email: fmt.Sprintf("u%d@x.io", i), Active: true, Source: store.SourceJIT,
						Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint(i)}}}
					if err := tx.PutUser(u); err != nil {
						return err
					}
					n, err := m.Prepare("okta", store.LogoutInfo{})
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
		for _, mode := range []struct {
			name string
			ttl  time.Duration
		}{{"cached", 0}, {"uncached", time.Nanosecond}} {
			b.Run(be.name+"/"+mode.name, func(b *testing.B) {
				m := session.New(be.st, session.Config{CacheTTL: mode.ttl}, nil, nil)
				for _, tok := range tokens { // warm: the first resolve loads
					if _, err := m.Resolve(ctx, tok); err != nil {
						b.Fatal(err)
					}
				}
				var seed atomic.Uint64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					rng := rand.New(rand.NewPCG(seed.Add(1), 9))
					for pb.Next() {
						if _, err := m.Resolve(ctx, tokens[rng.IntN(users)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
