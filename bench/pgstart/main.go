// Command pgstart measures how long a caddy-sso instance takes to start on
// a PostgreSQL store of a million users, against an empty store in the
// same run, in alternating rounds:
//
//   - open: postgres.Open (connect, check the schema under its advisory
//     lock), then the first sign-in lookup (a user by IdP link);
//
//   - caddy: a real Caddy process (cmd/caddy, built first) on that
//     database, from exec until it serves a signed-in user's request (the
//     sso app started, the session read from the database on first
//     sight) through the sso handler.
//
//     go run ./bench/pgstart                 # 1,000,000 users, 7 rounds
//     go run ./bench/pgstart -users 100000 -rounds 5
//
// It starts a throwaway PostgreSQL cluster (store/postgres/pgtest: initdb
// in a temporary directory, as the postgres OS user when run as root),
// loads the users with COPY, printing progress, and stops and deletes the
// cluster at the end: the database never leaves the temporary directory.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/bench/internal/fixture"
	"github.com/caddy-sso/caddy-sso/internal/caddyproc"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func main() {
	users := flag.Int("users", 1_000_000, "users in the big store")
	rounds := flag.Int("rounds", 7, "timed opens of each store")
	flag.Parse()
	if err := run(*users, *rounds); err != nil {
		log.Fatal(err)
	}
}

func run(users, rounds int) error {
	ctx := context.Background()
	cluster, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{Log: logf})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the cluster and deleting %s", cluster.Dir)
		if err := cluster.Stop(); err != nil {
			logf("stop: %v", err)
		}
	}()
	bin, err := caddyproc.Build(ctx)
	if err != nil {
		return err
	}
	logf("built %s", bin)
	work, err := os.MkdirTemp("", "sso-pgstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dsns := map[string]string{}
	for _, name := range []string{"empty", "big"} {
		if dsns[name], err = cluster.CreateDatabase(ctx, "sso_"+name); err != nil {
			return err
		}
		db, err := postgres.Open(ctx, postgres.Config{DSN: dsns[name]})
		if err != nil {
			return err
		}
		_ = db.Close()
	}
	if err := load(ctx, dsns["big"], users); err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, name := range []string{"empty", "big"} {
		n := 0
		if name == "big" {
			n = users
		}
		if tokens[name], err = signedIn(ctx, dsns[name], n); err != nil {
			return err
		}
	}

	times := map[string][]time.Duration{}
	firsts := map[string][]time.Duration{}
	serves := map[string][]time.Duration{}
	for r := range rounds {
		for _, name := range []string{"empty", "big"} {
			n := 0
			if name == "big" {
				n = users
			}
			open, first, err := openOnce(ctx, dsns[name], n)
			if err != nil {
				return err
			}
			serve, err := startCaddy(ctx, bin, filepath.Join(work, fmt.Sprintf("%s-%d", name, r)), dsns[name], tokens[name])
			if err != nil {
				return err
			}
			times[name] = append(times[name], open)
			firsts[name] = append(firsts[name], first)
			serves[name] = append(serves[name], serve)
			logf("round %d: %-5s open %v, first lookup by link %v; caddy serves a signed-in user after %v", r+1, name,
				open.Round(time.Microsecond), first.Round(time.Microsecond), serve.Round(time.Millisecond))
		}
	}
	for _, name := range []string{"empty", "big"} {
		n := 0
		if name == "big" {
			n = users
		}
		fmt.Printf("%-5s store (%d users): open median %v (min %v, max %v); first lookup by link median %v\n",
			name, n, median(times[name]).Round(time.Microsecond), slices.Min(times[name]).Round(time.Microsecond),
			slices.Max(times[name]).Round(time.Microsecond), median(firsts[name]).Round(time.Microsecond))
	}
	for _, name := range []string{"empty", "big"} {
		fmt.Printf("%-5s store: caddy serves a signed-in user after median %v (min %v, max %v)\n", name,
			median(serves[name]).Round(time.Millisecond), slices.Min(serves[name]).Round(time.Millisecond), slices.Max(serves[name]).Round(time.Millisecond))
	}
	fmt.Printf("ratio big/empty (open medians): %.2f; (caddy medians): %.2f\n", float64(median(times["big"]))/float64(median(times["empty"])),
		float64(median(serves["big"]))/float64(median(serves["empty"])))
	return nil
}

// signedIn starts a session for a user of the store at dsn (the middle one
// of a loaded store, or a new one in the empty store) and returns its
// cookie token.
func signedIn(ctx context.Context, dsn string, users int) (string, error) {
	db, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
	if err != nil {
		return "", err
	}
	defer db.Close()
	var u *store.User
	err = db.Update(ctx, func(tx store.Tx) error {
		if users > 0 {
			var err error
			u, err = tx.UserByLink("okta", subject(users/2))
			return err
		}
		u = &store.User{Email: "only@example.com", Active: true, Source: store.SourceJIT,
			Links: []store.Link{{IdP: "okta", Subject: "only"}}}
		return tx.PutUser(u)
	})
	if err != nil {
		return "", err
	}
	token, _, err := session.New(db, session.Config{}, nil, nil).Create(ctx, u, "okta", store.LogoutInfo{})
	return token, err
}

// startCaddy runs Caddy on dsn and returns the time from exec until it
// answers a request with the session token through the sso handler.
func startCaddy(ctx context.Context, bin, dir, dsn, token string) (time.Duration, error) {
	port, _, err := testport.Pick() // held until the process exits
	if err != nil {
		return 0, err
	}
	start := time.Now()
	// The IdP is never contacted (every request carries a session), so its
	// issuer is a port nothing listens on: discovery is lazy.
	p, err := caddyproc.Start(bin, "bench", dir, fixture.PostgresCaddyfile, "DATA="+dir, fmt.Sprintf("PORT=%d", port),
		"ISSUER=http://127.0.0.1:1", "SSO_DATABASE_URL="+dsn)
	if err != nil {
		return 0, err
	}
	defer p.Stop(10 * time.Second)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.WaitServing(wctx, fmt.Sprintf("http://127.0.0.1:%d/", port), http.StatusOK,
		"Cookie", "sso_session="+token, "Accept", "application/json"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// openOnce opens the store as an instance starting does, looks one user up
// by IdP link (a returning user's sign-in), and closes it.
func openOnce(ctx context.Context, dsn string, users int) (open, first time.Duration, err error) {
	start := time.Now()
	db, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	open = time.Since(start)
	start = time.Now()
	err = db.View(ctx, func(tx store.Tx) error {
		if users == 0 {
			_, err := tx.UserByLink("okta", "nobody")
			if err == nil || !isNotFound(err) {
				return fmt.Errorf("lookup in the empty store: %v", err)
			}
			return nil
		}
		_, err := tx.UserByLink("okta", subject(users/2))
		return err
	})
	return open, time.Since(start), err
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// load writes n users and their links with COPY, straight into the
// tables (the schema's layout, see store/postgres/migrations), printing
// progress, then analyzes them.
func load(ctx context.Context, dsn string, n int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	const chunk = 100_000
	for from := 0; from < n; from += chunk {
		to := min(from+chunk, n)
		var userRows, linkRows [][]any
		for i := from; i < to; i++ {
			u := store.User{
				ID: fmt.Sprintf("%032x", i), Email: fmt.Sprintf("user%d@example.com", i), FirstName: "First", LastName: fmt.Sprint("Last", i),
				Groups: []string{"staff", "eng"}, Active: true, Source: store.SourceJIT,
				Links:    []store.Link{{IdP: "okta", Subject: subject(i)}},
				UserName: fmt.Sprintf("user%d@example.com", i), IdP: "okta", ExternalID: subject(i),
				Created: t0, Updated: t0,
			}
			data, err := json.Marshal(&u)
			if err != nil {
				return err
			}
			userRows = append(userRows, []any{u.ID, u.IdP, store.FoldName(u.Email), store.FoldName(u.UserName), u.ExternalID, string(data)})
			linkRows = append(linkRows, []any{"okta", subject(i), u.ID})
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"sso_users"}, []string{"id", "idp", "email_key", "user_name_key", "external_id", "data"},
			pgx.CopyFromRows(userRows)); err != nil {
			return fmt.Errorf("copy users: %w", err)
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"sso_links"}, []string{"idp", "subject", "user_id"}, pgx.CopyFromRows(linkRows)); err != nil {
			return fmt.Errorf("copy links: %w", err)
		}
		logf("loaded %d of %d users (%v)", to, n, time.Since(start).Round(time.Second))
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE sso_users, sso_links"); err != nil {
		return err
	}
	var size string
	if err := conn.QueryRow(ctx, "SELECT pg_size_pretty(pg_database_size(current_database()))").Scan(&size); err != nil {
		return err
	}
	logf("big store ready: %d users, database size %s (%v)", n, size, time.Since(start).Round(time.Second))
	return nil
}

func subject(i int) string { return fmt.Sprintf("00u%08d", i) }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
