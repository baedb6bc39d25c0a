package bolt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

const benchUsers = 100_000

// filledStore builds a store of n users in transactions of 10,000 with
// fsync off, which is how a bulk import would do it; the benchmarks then
// measure lookups with sync back on.
func filledStore(b *testing.B, n int) *DB {
	b.Helper()
	db := openTest(b)
	db.bdb.NoSync = true
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const chunk = 10_000
	for start := 0; start < n; start += chunk {
		update(b, db, func(tx store.Tx) error {
			for i := start; i < min(start+chunk, n); i++ {
				u := &store.User{
					Email: fmt.Sprintf("user%d@example.com", i), FirstName: "First", LastName: fmt.Sprint("Last", i),
					Groups: []string{"staff", "eng"}, Active: true, Source: store.SourceJIT,
					Links:    []store.Link{{IdP: "okta", Subject: fmt.Sprintf("00u%08d", i)}},
					UserName: fmt.Sprintf("user%d@example.com", i), IdP: "okta", ExternalID: fmt.Sprintf("00u%08d", i),
					Created: t0, Updated: t0,
				}
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := db.bdb.Sync(); err != nil {
		b.Fatal(err)
	}
	db.bdb.NoSync = false
	return db
}

func BenchmarkUserByLink(b *testing.B) {
	db := filledStore(b, benchUsers)
	b.Run(fmt.Sprint(benchUsers, "users"), func(b *testing.B) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			sub := fmt.Sprintf("00u%08d", rng.IntN(benchUsers))
			err := db.View(ctx, func(tx store.Tx) error {
				_, err := tx.UserByLink("okta", sub)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUserByEmail(b *testing.B) {
	db := filledStore(b, benchUsers)
	b.Run(fmt.Sprint(benchUsers, "users"), func(b *testing.B) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			email := fmt.Sprintf("USER%d@example.com", rng.IntN(benchUsers))
			err := db.View(ctx, func(tx store.Tx) error {
				_, err := tx.UserByEmail(email)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUserByUserName is the store half of SCIM's
// filter=userName eq "…": one seek in user_names, one in users, whatever
// the number of users. Compare the figure at 1,000 and 100,000 users: an
// index read barely moves, a scan would grow a hundredfold.
func BenchmarkUserByUserName(b *testing.B) {
	for _, n := range []int{1_000, benchUsers} {
		db := filledStore(b, n)
		b.Run(fmt.Sprint(n, "users"), func(b *testing.B) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				name := fmt.Sprintf("User%d@Example.com", rng.IntN(n))
				err := db.View(ctx, func(tx store.Tx) error {
					_, err := tx.UserByUserName(name)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUserByExternalID(b *testing.B) {
	db := filledStore(b, benchUsers)
	b.Run(fmt.Sprint(benchUsers, "users"), func(b *testing.B) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			ext := fmt.Sprintf("00u%08d", rng.IntN(benchUsers))
			err := db.View(ctx, func(tx store.Tx) error {
				_, err := tx.UserByExternalID("okta", ext)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConcurrentLoginUpdate is the write half of a login: find the
// user by link, bump LastLogin, append an audit event, all in one Update.
// commits/op shows how well concurrent logins share fsyncs.
func BenchmarkConcurrentLoginUpdate(b *testing.B) {
	const users = 10_000
	db := filledStore(b, users)
	b.Run(fmt.Sprint(users, "users"), func(b *testing.B) {
		ctx := context.Background()
		var seed atomic.Uint64
		before := commitID(b, db)
		b.ReportAllocs()
		b.SetParallelism(8) // logins wait on I/O, not CPU
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(seed.Add(1), 7))
			for pb.Next() {
				sub := fmt.Sprintf("00u%08d", rng.IntN(users))
				err := db.Update(ctx, func(tx store.Tx) error {
					u, err := tx.UserByLink("okta", sub)
					if err != nil {
						return err
					}
					u.LastLogin = time.Now()
					if err := tx.PutUser(u); err != nil {
						return err
					}
					return tx.Audit(store.Event{Type: store.EventLoginSucceeded, IdP: "okta", UserID: u.ID, Subject: sub})
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(commitID(b, db)-before)/float64(b.N), "commits/op")
	})
}
