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
	"os"
	"time"

	"github.com/caddy-sso/caddy-sso/bench/internal/fixture"
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

	start := time.Now()
	fmt.Printf("genstore: adding %d users and sessions to %s, sessions current at %s\n", *n, *path, now.Format(time.RFC3339))
	err = fixture.Generate(ctx, db, *n, *chunk, now, *seed, func(done int) {
		if done%(20*(*chunk)) == 0 || done == *n {
			el := time.Since(start)
			fi, _ := os.Stat(*path)
			fmt.Printf("genstore: %d/%d (%d%%) in %s, %.0f sign-ins/s, file %d MiB\n", done, *n, 100*done / *n,
				el.Round(time.Second), float64(done)/el.Seconds(), fi.Size()>>20)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		log.Fatal(err)
	}
	var c store.Counts
	_ = db.View(ctx, func(tx store.Tx) error { c, err = tx.Counts(); return err })
	fi, _ := os.Stat(*path)
	fmt.Printf("genstore: done in %s: %+v, file %d MiB\n", time.Since(start).Round(time.Second), c, fi.Size()>>20)
}
