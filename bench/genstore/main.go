// Command genstore fills a bbolt store with N users and N sessions, one
// session per user, as N real OIDC sign-ins would leave them: each user
// with an IdP link, an email, a SCIM userName and externalId, two audit
// events (user.created, login.succeeded), and a session written by package
// session with a sealed ~1.2 KB ID token. It makes the store that the
// scale measurements (bench/storeload, docs/operations.md) run on.
//
//	go run ./bench/genstore -store /work/tmp-store/1m.db -n 1000000
//
// Sessions are spread as on a busy day at the -now instant: last seen
// within the idle hour before it, created up to the 8-hour lifetime
// before that. The file must not exist or must be a store of this schema;
// Caddy must not be running on it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"os"
	"time"

	"github.com/caddy-sso/caddy-sso/bench/internal/fixture"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

func main() {
	path := flag.String("store", "", "bbolt store file to create or extend")
	n := flag.Int("n", 1_000_000, "users (and sessions) to add")
	chunk := flag.Int("chunk", 5_000, "sign-ins per transaction")
	nowFlag := flag.String("now", "", "RFC 3339 instant the sessions are current at (default: now)")
	seed := flag.Uint64("seed", 1, "seed of the pseudo-random spread of times")
	flag.Parse()
	if *path == "" {
		log.Fatal("genstore: -store is required")
	}
	now := time.Now().UTC().Truncate(time.Second)
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			log.Fatalf("genstore: -now: %v", err)
		}
		now = t
	}
	db, err := bolt.Open(*path, bolt.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	var clock time.Time
	m := session.New(db, session.Config{MaxPerUser: -1}, nil, func() time.Time { return clock })
	rng := mrand.New(mrand.NewPCG(*seed, 2))
	var first int
	if err := db.View(ctx, func(tx store.Tx) error {
		c, err := tx.Counts()
		first = c.Users
		return err
	}); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	fmt.Printf("genstore: adding %d users and sessions to %s (from user %d), sessions current at %s\n",
		*n, *path, first, now.Format(time.RFC3339))
	for done := 0; done < *n; {
		size := min(*chunk, *n-done)
		err := db.Update(ctx, func(tx store.Tx) error {
			for i := first + done; i < first+done+size; i++ {
				if err := signIn(tx, m, &clock, rng, now, i); err != nil {
					return fmt.Errorf("user %d: %w", i, err)
				}
			}
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
		done += size
		if done%(20*(*chunk)) == 0 || done == *n {
			el := time.Since(start)
			fi, _ := os.Stat(*path)
			fmt.Printf("genstore: %d/%d (%d%%) in %s, %.0f sign-ins/s, file %d MiB\n", done, *n, 100*done / *n,
				el.Round(time.Second), float64(done)/el.Seconds(), fi.Size()>>20)
		}
	}
	if err := db.Sync(); err != nil {
		log.Fatal(err)
	}
	var c store.Counts
	_ = db.View(ctx, func(tx store.Tx) error { c, err = tx.Counts(); return err })
	fi, _ := os.Stat(*path)
	fmt.Printf("genstore: done in %s: %+v, file %d MiB\n", time.Since(start).Round(time.Second), c, fi.Size()>>20)
}

// signIn writes what a JIT sign-in of user i writes.
func signIn(tx store.Tx, m *session.Manager, clock *time.Time, rng *mrand.Rand, now time.Time, i int) error {
	idpName := fixture.IdP
	subject, email := fixture.Subject(i), fixture.Email(i)
	seen := now.Add(-time.Duration(rng.Int64N(int64(time.Hour))))
	created := seen.Add(-time.Duration(rng.Int64N(int64(7 * time.Hour))))
	u := &store.User{
		Email: email, FirstName: "First", LastName: fmt.Sprint("Last", i),
		Groups: []string{"staff", fmt.Sprint("team-", i%50)}, Active: true, Source: store.SourceJIT,
		Links:    []store.Link{{IdP: idpName, Subject: subject}},
		UserName: email, IdP: idpName, ExternalID: subject,
		Created: created, Updated: created, LastLogin: created,
	}
	if err := tx.PutUser(u); err != nil {
		return err
	}
	for _, typ := range []string{store.EventUserCreated, store.EventLoginSucceeded} {
		if err := tx.Audit(store.Event{Time: created, Type: typ, IdP: idpName, UserID: u.ID, Subject: subject}); err != nil {
			return err
		}
	}
	*clock = created
	fresh, err := m.Prepare(idpName, store.LogoutInfo{Subject: subject})
	if err != nil {
		return err
	}
	fresh.Token = fixture.Token(i)
	fresh.Session.Hash = session.Hash(fresh.Token)
	fresh.Session.LastSeen = seen
	fresh.Tokens = &session.Tokens{IDToken: fixture.IDToken(subject, email, created, i%50)}
	return fresh.Write(tx, u)
}
