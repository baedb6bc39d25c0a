package clustertest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// privateCluster starts a PostgreSQL cluster of the test's own (the
// shared one must not go away under other tests) with a database for
// caddy-sso, and stops it when the test ends.
func privateCluster(t *testing.T) (*pgtest.Cluster, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Durable (fsync and synchronous commits on): an immediate stop must
	// lose nothing that was committed.
	pg, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{})
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	t.Cleanup(func() {
		_ = pg.Thaw()
		if err := pg.Stop(); err != nil {
			t.Errorf("stopping the private cluster: %v", err)
		}
	})
	dsn, err := pg.CreateDatabase(ctx, "sso")
	if err != nil {
		t.Fatal(err)
	}
	return pg, dsn
}

// TestDatabaseAway stops the database under two running instances, once
// as a crash does (connections refused) and once as a hung host or a
// partitioned network does (connections accepted, nothing answered), and
// checks what users get (docs/cluster.md, "Failover"): sessions an
// instance has cached keep working; a session it must read, and a
// sign-in, get a plain "try again" page (503 with Retry-After) within the
// statement timeout, never a hang; and everything works again once the
// database is back, without a restart.
func TestDatabaseAway(t *testing.T) {
	pg, dsn := privateCluster(t)
	const statementTimeout = time.Second
	c := startCluster(t, dsn, clusterOptions{statementTimeout: statementTimeout.String()})
	// Generous for a loaded machine, and far below a hang.
	const bound = statementTimeout + 3*time.Second
	waitListening(t, pg.AdminDSN, 2)

	for _, outage := range []struct {
		name     string
		down, up func() error
	}{
		{"stopped", func() error { return pg.Halt(context.Background()) }, func() error { return pg.Resume(context.Background()) }},
		{"frozen", pg.Freeze, pg.Thaw},
	} {
		t.Run(outage.name, func(t *testing.T) {
			user := "steady" + outage.name
			c.addOIDCUser(user)
			c.addOIDCUser("newbie" + outage.name)
			// Signed in on a, so cached there; b has never seen it.
			onA := c.newBrowser(t).via("a")
			onA.signInOIDC(t, "/", user)
			onB := c.withCookie(t, "b", onA.sessionCookie())
			// Another user, who signs out on b during the outage.
			leaver := "leaver" + outage.name
			c.addOIDCUser(leaver)
			lv := c.newBrowser(t).via("a")
			lv.signInOIDC(t, "/", leaver)
			leaverCookie := lv.sessionCookie()

			if err := outage.down(); err != nil {
				t.Fatal(err)
			}
			downAt := time.Now()

			// The cached session goes on working.
			start := time.Now()
			if saw := caddytest.UpstreamSaw(t, onA.Get(c.base+"/cached")); saw.Header("X-Forwarded-Email") != user+"@example.com" {
				t.Errorf("a forwarded %q", saw.Header("X-Forwarded-Email"))
			}
			t.Logf("a, cached session: served in %v", time.Since(start).Round(time.Millisecond))

			// The session b must read: a page that says to try again.
			start = time.Now()
			resp := onB.Get(c.base + "/uncached")
			body := caddytest.ReadBody(t, resp)
			took := time.Since(start)
			t.Logf("b, session to read: %s in %v", resp.Status, took.Round(time.Millisecond))
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
				!strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "Try again") {
				t.Errorf("navigation on b: %s, Retry-After %q, %s: %.300s; want a 503 page with Retry-After",
					resp.Status, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), body)
			}
			if took > bound {
				t.Errorf("navigation on b took %v, want under %v", took, bound)
			}
			// A script gets the same status, as JSON.
			start = time.Now()
			resp = onB.Get(c.base+"/api", "Accept", "application/json")
			body = caddytest.ReadBody(t, resp)
			var msg struct {
				Error string `json:"error"`
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || json.Unmarshal([]byte(body), &msg) != nil || msg.Error == "" {
				t.Errorf("API request on b: %s, Retry-After %q: %.300s; want 503 JSON", resp.Status, resp.Header.Get("Retry-After"), body)
			}
			if took := time.Since(start); took > bound {
				t.Errorf("API request on b took %v, want under %v", took, bound)
			}

			// A new sign-in reaches the IdP (nothing is stored before
			// the callback), and the callback says to try again.
			start = time.Now()
			fresh := c.newBrowser(t).via("a")
			resp, err := fresh.TrySignIn(c.base+"/", "newbie"+outage.name, "newbie"+outage.name+"-pw")
			if err != nil {
				t.Fatal(err)
			}
			body = caddytest.ReadBody(t, resp)
			took = time.Since(start)
			t.Logf("sign-in: %s in %v", resp.Status, took.Round(time.Millisecond))
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Try again") {
				t.Errorf("sign-in: %s, Retry-After %q: %.300s; want a 503 page", resp.Status, resp.Header.Get("Retry-After"), body)
			}
			if fresh.sessionCookie() != "" {
				t.Error("a sign-in got a session cookie while the database was away")
			}
			if took > 2*bound {
				t.Errorf("sign-in took %v, want under %v", took, 2*bound)
			}

			// Signing out on b clears the cookie, and says that the
			// sign-out could not be recorded.
			leaving := c.withCookie(t, "b", leaverCookie)
			resp, err = leaving.NoRedirects().PostForm(c.base+"/.sso/logout", nil)
			if err != nil {
				t.Fatal(err)
			}
			body = caddytest.ReadBody(t, resp)
			if resp.StatusCode != http.StatusServiceUnavailable || leaving.sessionCookie() != "" || !strings.Contains(body, "signed out in this browser") {
				t.Errorf("logout on b: %s, cookie kept %v: %.300s; want a 503 page and the cookie cleared", resp.Status, leaving.sessionCookie() != "", body)
			}

			// Back: b reads the session, with no restart.
			if err := outage.up(); err != nil {
				t.Fatal(err)
			}
			upAt := time.Now()
			for {
				status, _, err := onB.api("/back")
				if err == nil && status == http.StatusOK {
					break
				}
				if time.Since(upAt) > 30*time.Second {
					t.Fatalf("b still fails 30s after the database came back: %d %v", status, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("database away for %v; b served the session %v after it came back",
				upAt.Sub(downAt).Round(time.Millisecond), time.Since(upAt).Round(time.Millisecond))
			// The sign-out b could not record: b refuses that session
			// all the same (a copy of the cookie), until it records it.
			copied := c.withCookie(t, "b", leaverCookie)
			if status, _, _ := copied.api("/signed-out"); status != http.StatusUnauthorized {
				t.Errorf("the session signed out on b while the database was away, on b after: %d, want 401", status)
			}
			caddytest.UpstreamSaw(t, c.newBrowser(t).SignIn(c.base+"/", "newbie"+outage.name, "newbie"+outage.name+"-pw"))
			// Both instances listen for invalidations again before the
			// next outage: an instance clears its cache when its listener
			// resubscribes, which would otherwise empty the cache the
			// next outage relies on.
			waitListening(t, pg.AdminDSN, 2)
		})
	}
}

// waitListening waits until n invalidation listeners (one per instance)
// have subscribed on the sso database.
func waitListening(t *testing.T, adminDSN string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var listening int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = 'sso' AND application_name = $1 AND query LIKE 'LISTEN %'`, postgres.ListenerApplicationName).Scan(&listening)
		if err == nil && listening >= n {
			// Subscribing is followed at once by the cache clear.
			time.Sleep(100 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d invalidation listeners subscribed after 30 s (%v)", listening, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
