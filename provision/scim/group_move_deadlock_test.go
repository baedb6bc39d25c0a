package scim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestGroupMovesDoNotDeadlock: two group PATCHes on two instances of one
// PostgreSQL store, moving two users between two groups in opposite
// directions, each removing one and adding the other. Each must take the
// users' row locks in one ID order; when resolveMembers locked the added
// member (tx.User) before PutGroup locked every touched member in ID
// order, the PATCH adding the higher ID held it while it asked for the
// lower, the other held the lower and asked for the higher, and
// PostgreSQL broke the cycle after deadlock_timeout by failing one, which
// the store reran.
//
// A third connection holds the higher user's row so that the two
// transactions meet in the order that deadlocked: A's PATCH (G1: remove
// lo, add hi) queues on hi, then B's (G2: remove hi, add lo) queues too;
// the third connection then lets go.
func TestGroupMovesDoNotDeadlock(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	srvA, srvB := indexedServer(t, a), indexedServer(t, b)

	user := func(name string) string {
		return postID(t, srvA, "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q}`, name))
	}
	lo, hi := user("u1@example.com"), user("u2@example.com")
	if hi < lo {
		lo, hi = hi, lo
	}
	group := func(name, member string) string {
		return postID(t, srvA, "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":%q,"members":[{"value":%q}]}`, name, member))
	}
	g1, g2 := group("g1", lo), group("g2", hi)
	move := func(out, in string) string {
		return fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+
			`{"op":"remove","path":"members[value eq \"%s\"]"},{"op":"add","path":"members","value":[{"value":%q}]}]}`, out, in)
	}

	watch := connect(t, dsn)
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := watch.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	deadlocks := func() int {
		// The statistics reach pg_stat_database about once a second.
		time.Sleep(1500 * time.Millisecond)
		return count("SELECT deadlocks::int FROM pg_stat_database WHERE datname = current_database()")
	}
	waitForWaiters := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); count(`SELECT count(*)::int FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`) < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d transaction(s) never queued for a lock", n)
			}
		}
	}
	deadlockTimeout := time.Duration(count("SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'")) * time.Millisecond
	d0, r0 := deadlocks(), a.Reruns()+b.Reruns()

	holder := connect(t, dsn)
	htx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := htx.Exec(ctx, "SELECT 1 FROM sso_users WHERE id = $1 FOR NO KEY UPDATE", hi); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var statusA, statusB int
	wg.Go(func() { statusA = patch(t, srvA, "/Groups/"+g1, move(lo, hi)) })
	waitForWaiters(1)
	wg.Go(func() { statusB = patch(t, srvB, "/Groups/"+g2, move(hi, lo)) })
	waitForWaiters(2)
	released := time.Now()
	if err := htx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	took := time.Since(released)

	if statusA != http.StatusNoContent || statusB != http.StatusNoContent {
		t.Fatalf("statuses %d and %d, want 204 and 204", statusA, statusB)
	}
	if n := a.Reruns() + b.Reruns() - r0; n != 0 {
		t.Errorf("%d rerun(s) of the two PATCHes, want none", n)
	}
	if n := deadlocks() - d0; n != 0 {
		t.Errorf("%d deadlock(s) between the two PATCHes, want none", n)
	}
	if took >= deadlockTimeout {
		t.Errorf("the PATCHes finished %v after the row was free, not within deadlock_timeout (%v)", took, deadlockTimeout)
	}
	if count("SELECT count(*)::int FROM sso_group_members WHERE (group_id = $1 AND user_id = $2) OR (group_id = $3 AND user_id = $4)", g1, hi, g2, lo) != 2 ||
		count("SELECT count(*)::int FROM sso_group_members") != 2 {
		t.Error("the members after the moves are not G1 = {hi}, G2 = {lo}")
	}
}

func openPostgres(t *testing.T, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// scimRequest sends an authorised SCIM request to srv and returns the
// status and the body.
func scimRequest(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/scim/v2"+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/scim+json")
	req.Header.Set("Authorization", "Bearer "+entraToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Error(err)
	}
	return res.StatusCode, raw
}

// postID creates a resource and returns its id.
func postID(t *testing.T, srv *httptest.Server, path, body string) string {
	t.Helper()
	status, raw := scimRequest(t, srv, http.MethodPost, path, body)
	var doc struct{ ID string }
	if err := json.Unmarshal(raw, &doc); status != http.StatusCreated || err != nil || doc.ID == "" {
		t.Fatalf("POST %s: %d %s", path, status, raw)
	}
	return doc.ID
}

// patch sends a PATCH from a goroutine of its own (t.Error, not Fatal).
func patch(t *testing.T, srv *httptest.Server, path, body string) int {
	status, raw := scimRequest(t, srv, http.MethodPatch, path, body)
	if status != http.StatusNoContent {
		t.Errorf("PATCH %s: %d %s", path, status, raw)
	}
	return status
}
