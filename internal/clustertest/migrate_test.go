package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// migrateUsers is the size of the bbolt store the test moves; bench/migrate
// moves 100,000.
const migrateUsers = 1000

// fillBolt writes n users of IdP "oidc" (subject "sub-migNNNN", email
// migNNNN@example.com) into a new bbolt store at path, and a session for
// the user at index withSession, whose cookie token it returns.
func fillBolt(t *testing.T, path string, n, withSession int) (users []*store.User, token string) {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Now()
	err = db.Update(ctx, func(tx store.Tx) error {
		users = users[:0]
		for i := range n {
			name := fmt.Sprintf("mig%04d", i)
			u := &store.User{Email: name + "@example.com", FirstName: "Test", LastName: name, Groups: []string{"staff"},
				Active: true, Source: store.SourceJIT, IdP: "oidc", UserName: name + "@example.com", ExternalID: "sub-" + name,
				Links: []store.Link{{IdP: "oidc", Subject: "sub-" + name}}, Created: now, Updated: now}
			if err := tx.PutUser(u); err != nil {
				return err
			}
			users = append(users, u)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = session.New(db, session.Config{}, nil, nil).Create(ctx, users[withSession], "oidc", store.LogoutInfo{Subject: users[withSession].Links[0].Subject})
	if err != nil {
		t.Fatal(err)
	}
	return users, token
}

// TestMigrateBoltToPostgres moves a bbolt store to PostgreSQL with the
// command an operator runs (`caddy sso migrate`, the real binary), starts
// an instance on the database, and checks that an existing user who signs
// in is the same user (same ID, no new one), and that a session made
// before the move still works.
func TestMigrateBoltToPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin, err := caddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	boltPath := filepath.Join(t.TempDir(), "sso.db")
	users, token := fillBolt(t, boltPath, migrateUsers, 7)

	start := time.Now()
	cmd := exec.Command(bin, "sso", "migrate", "--from", "bolt:"+boltPath, "--to", "postgres:"+dsn)
	cmd.Env = append(cmd.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("caddy sso migrate: %v\n%s", err, out)
	}
	t.Logf("caddy sso migrate of %d users: %v; last line: %s", migrateUsers, time.Since(start).Round(time.Millisecond), lastLine(string(out)))
	if !strings.Contains(string(out), "counts match") || strings.Contains(string(out), dsn) {
		t.Fatalf("caddy sso migrate said:\n%s", out)
	}

	c := startCluster(t, dsn, clusterOptions{names: []string{"a"}})
	existing := users[500]
	c.addOIDCUser("mig0500")
	saw := c.newBrowser(t).signInOIDC(t, "/", "mig0500")
	if got := saw.Header("X-Forwarded-User"); got != existing.ID {
		t.Fatalf("mig0500 signed in as %q, want the migrated user %s", got, existing.ID)
	}
	if n := len(usersMatching(t, c.db(), "oidc", "sub-mig0500", "mig0500@example.com")); n != 1 {
		t.Fatalf("%d users for mig0500 after the sign-in, want 1", n)
	}
	var total int
	if err := c.db().View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(*store.User) error { total++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if total != migrateUsers {
		t.Errorf("%d users in PostgreSQL, want the %d migrated", total, migrateUsers)
	}

	// The session made on bbolt, sealed tokens and all, came along.
	br := c.newBrowser(t)
	u, _ := url.Parse(c.base)
	br.Jar.SetCookies(u, []*http.Cookie{{Name: "sso_session", Value: token}})
	status, saw, err := br.api("/")
	if err != nil || status != http.StatusOK || saw.Header("X-Forwarded-User") != users[7].ID {
		t.Fatalf("the pre-migration session: %d %v as %q, want user %s", status, err, saw.Header("X-Forwarded-User"), users[7].ID)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
