// Command migrate moves a 100,000-user bbolt store to PostgreSQL the way an
// operator does, with `caddy sso migrate` (the real binary, built from
// cmd/caddy), then starts Caddy on the database and signs in as one of the
// existing users through a real OpenID provider (idp/oidc/oidctest): the
// sign-in must find the same user (same ID) and create none.
//
//	go run ./bench/migrate                  # 100,000 users, 50,000 sessions, 100,000 audit events
//	go run ./bench/migrate -users 10000
//
// It starts a throwaway PostgreSQL cluster (store/postgres/pgtest, durable
// settings), writes the bbolt store in a temporary directory, prints
// progress as it goes, and removes everything at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/bench/internal/fixture"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddyproc"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func main() {
	users := flag.Int("users", 100_000, "users in the bbolt store (half of them with a session)")
	flag.Parse()
	if err := run(*users); err != nil {
		log.Fatal(err)
	}
}

func run(users int) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "sso-migrate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := caddyproc.Build(ctx)
	if err != nil {
		return err
	}
	logf("built %s", bin)
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
	dsn, err := cluster.CreateDatabase(ctx, "sso")
	if err != nil {
		return err
	}

	boltPath := filepath.Join(work, "sso.db")
	existing, err := fillBolt(ctx, boltPath, users)
	if err != nil {
		return err
	}

	logf("caddy sso migrate --from bolt:%s --to postgres:…", boltPath)
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "sso", "migrate", "--from", "bolt:"+boltPath, "--to", "postgres:"+dsn)
	cmd.Env = append(os.Environ(), "HOME="+work)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr // its progress lines
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("caddy sso migrate: %w\n%s", err, out.String())
	}
	took := time.Since(start)
	fmt.Print(out.String())
	fmt.Printf("migrated %d users in %v (%v per user)\n", users, took.Round(time.Second), (took / time.Duration(users)).Round(time.Microsecond))

	id, err := signInAfterMigration(ctx, bin, work, dsn, existing)
	if err != nil {
		return err
	}
	if id != existing.ID {
		return fmt.Errorf("%s signed in as user %q, want the migrated user %s", existing.Email, id, existing.ID)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM sso_users").Scan(&n); err != nil {
		return err
	}
	if n != users {
		return fmt.Errorf("%d users in PostgreSQL after the sign-in, want %d", n, users)
	}
	fmt.Printf("%s signed in through Caddy on PostgreSQL as the same user (%s); %d users, none added\n", existing.Email, id, n)
	return nil
}

// fillBolt writes users of IdP "okta" (subject "00uNNNNNNNN"), a session
// for every other one and a user.created audit event for each, in
// transactions of a thousand users, and returns the user in the middle.
func fillBolt(ctx context.Context, path string, users int) (*store.User, error) {
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	sessions := session.New(db, session.Config{}, nil, nil)
	var middle *store.User
	start := time.Now()
	for from := 0; from < users; from += 1000 {
		err := db.Update(ctx, func(tx store.Tx) error {
			for i := from; i < min(from+1000, users); i++ {
				sub := fmt.Sprintf("00u%08d", i)
				u := &store.User{Email: fmt.Sprintf("user%d@example.com", i), FirstName: "First", LastName: fmt.Sprint("Last", i),
					Groups: []string{"staff"}, Active: true, Source: store.SourceJIT, IdP: "okta",
					UserName: fmt.Sprintf("user%d@example.com", i), ExternalID: sub, Links: []store.Link{{IdP: "okta", Subject: sub}}}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				if err := tx.Audit(store.Event{Type: store.EventUserCreated, IdP: "okta", UserID: u.ID}); err != nil {
					return err
				}
				if i%2 == 0 {
					n, err := sessions.Prepare("okta", store.LogoutInfo{Subject: sub}, nil)
					if err != nil {
						return err
					}
					if err := n.Write(tx, u); err != nil {
						return err
					}
				}
				if i == users/2 {
					middle = u
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if done := min(from+1000, users); done%20000 == 0 || done == users {
			logf("bbolt store: %d of %d users (%v)", done, users, time.Since(start).Round(time.Second))
		}
	}
	fi, err := os.Stat(path)
	if err == nil {
		logf("bbolt store ready: %d MB", fi.Size()>>20)
	}
	return middle, nil
}

// signInAfterMigration starts Caddy on dsn and signs in as u (by its
// IdP subject) at a local OpenID provider; it returns the user ID Caddy
// gave the page.
func signInAfterMigration(ctx context.Context, bin, work, dsn string, u *store.User) (string, error) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer op.Close()
	port, _, err := testport.Pick() // held until the process exits
	if err != nil {
		return "", err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	op.RegisterClient(oidctest.Client{ID: "bench", Secret: "bench-secret", RedirectURIs: []string{base + "/.sso/oidc/okta/callback"}})
	op.AddUser("existing", "existing-pw", map[string]any{"sub": u.Links[0].Subject, "given_name": u.FirstName,
		"family_name": u.LastName, "email": u.Email, "email_verified": true})
	dir := filepath.Join(work, "caddy")
	p, err := caddyproc.Start(bin, "migrated", dir, fixture.PostgresCaddyfile, "DATA="+dir, fmt.Sprintf("PORT=%d", port),
		"ISSUER="+op.Issuer, "SSO_DATABASE_URL="+dsn)
	if err != nil {
		return "", err
	}
	defer p.Stop(10 * time.Second)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.WaitServing(wctx, base+"/.sso/whoami", http.StatusUnauthorized); err != nil {
		return "", err
	}
	logf("caddy serving on the migrated database after %v", time.Since(start).Round(time.Millisecond))
	body, err := signIn(base+"/", "existing", "existing-pw")
	if err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(body, "user=")
	if !ok {
		return "", fmt.Errorf("sign-in ended on %.300q", body)
	}
	return id, nil
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// signIn opens page as a browser, fills in oidctest's login form and
// returns the page it ends on.
func signIn(page, username, password string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, page, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	action := formAction.FindStringSubmatch(string(raw))
	if action == nil {
		return "", errors.New("no login form at the OpenID provider")
	}
	form := url.Values{"username": {username}, "password": {password}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(raw), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	resp, err = c.PostForm(html.UnescapeString(action[1]), form)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sign-in: %s: %.300s", resp.Status, raw)
	}
	return string(raw), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
