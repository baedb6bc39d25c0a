// Command mksession prepares a store for load tests: it creates a user and
// a session in a bbolt store file (Caddy must not be running on it) and
// prints the session token, to be sent as the sso_session cookie.
//
//	go run ./bench/mksession -store /tmp/bench/sso.db
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

func main() {
	path := flag.String("store", "", "bbolt store file to create the session in")
	idpName := flag.String("idp", "bench", "IdP name the session belongs to")
	flag.Parse()
	if *path == "" {
		log.Fatal("mksession: -store is required")
	}
	db, err := bolt.Open(*path, bolt.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	u := &store.User{Email: "load@example.com", FirstName: "Load", LastName: "Test",
		Groups: []string{"bench"}, Active: true, Source: store.SourceAdmin,
		Links: []store.Link{{IdP: *idpName, Subject: "load-test"}}}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		log.Fatal(err)
	}
	token, _, err := session.New(db, session.Config{}, nil, nil).Create(ctx, u, *idpName, store.LogoutInfo{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(token)
}
