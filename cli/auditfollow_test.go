package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	ssocli "github.com/caddy-sso/caddy-sso/cli"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// The lines `audit --follow` prints on stderr when reading the trail starts
// and stops failing.
const (
	followWarning = "warning: cannot read the audit trail"
	followResumed = "the audit trail can be read again"
)

// fakeAuditAPI is an admin API that answers GET /sso/audit from events,
// or, while fail is set, refuses it with that status.
type fakeAuditAPI struct {
	mu     sync.Mutex
	events []store.Event
	fail   int
	afters []string // each request's after, in order
}

func (f *fakeAuditAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set(adminapi.MarkHeader, "1")
	if r.URL.Path != "/sso/audit" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	f.afters = append(f.afters, q.Get("after"))
	w.Header().Set("Content-Type", "application/json")
	if f.fail != 0 {
		w.WriteHeader(f.fail)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": http.StatusText(f.fail) + " (fake)"})
		return
	}
	after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	page := account.AuditPage{Events: []store.Event{}, Next: after}
	for _, e := range f.events {
		if e.Seq > after && (limit == 0 || len(page.Events) < limit) {
			page.Events = append(page.Events, e)
			page.Next = e.Seq
		}
	}
	_ = json.NewEncoder(w).Encode(page)
}

func (f *fakeAuditAPI) add(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, store.Event{Seq: uint64(len(f.events) + 1), Time: time.Now(), Type: store.EventLoginFailed, IdP: "test", Reason: reason})
}

func (f *fakeAuditAPI) setFail(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = status
}

// requests returns how many requests it has had, and their afters from
// the from-th on.
func (f *fakeAuditAPI) requests(from int) (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.afters), slices.Clone(f.afters[min(from, len(f.afters)):])
}

// startFakeAuditAPI serves a fakeAuditAPI holding one event ("first") and
// returns it with the --address flag that reaches it. The tests follow
// it with --interval=20ms: a pause of up to 100 ms between failures.
func startFakeAuditAPI(t *testing.T) (*fakeAuditAPI, string) {
	t.Helper()
	api := &fakeAuditAPI{}
	api.add("first")
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, "--address=" + srv.Listener.Addr().String()
}

// followCLI runs `caddy sso args` until ctx ends, with stdout and stderr
// apart; done receives its result.
func followCLI(ctx context.Context, args ...string) (stdout, stderr *caddytest.Output, done chan error) {
	stdout, stderr, done = new(caddytest.Output), new(caddytest.Output), make(chan error, 1)
	cmd := ssocli.NewCommand()
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetArgs(args)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	return stdout, stderr, done
}

// waitFollowing waits until cond holds, failing the test if the follower
// ends first.
func waitFollowing(t *testing.T, done chan error, cond func() bool, what string, out ...*caddytest.Output) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("audit --follow ended (err %v) before %s:\n%s", err, what, outputs(out))
		case <-deadline:
			t.Fatalf("timed out waiting for %s:\n%s", what, outputs(out))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func outputs(out []*caddytest.Output) string {
	var b strings.Builder
	for _, o := range out {
		b.WriteString(o.String())
		b.WriteString("---\n")
	}
	return b.String()
}

// followThroughOutage has the fake admin API fail with each of statuses
// in turn (a few requests each), adds an event ("second") meanwhile, and
// lets it answer again; it returns the afters of the requests from the
// first failure on.
func followThroughOutage(t *testing.T, api *fakeAuditAPI, done chan error, statuses []int, out ...*caddytest.Output) []string {
	t.Helper()
	start, _ := api.requests(0)
	for i, status := range statuses {
		api.setFail(status)
		n, _ := api.requests(0)
		waitFollowing(t, done, func() bool { m, _ := api.requests(0); return m >= n+3 }, fmt.Sprintf("three attempts answered %d", status), out...)
		if i == 0 {
			api.add("second")
		}
	}
	api.setFail(0)
	waitFollowing(t, done, func() bool { return strings.Contains(out[0].String(), "second") }, "the event added during the outage", out...)
	_, afters := api.requests(start)
	// Once "second" is printed the follower rightly asks for events after
	// it, and on a busy machine it may do so before the requests are
	// read: those asks are not part of the outage.
	for len(afters) > 1 && afters[len(afters)-1] == "2" {
		afters = afters[:len(afters)-1]
	}
	return afters
}

// TestAuditFollowRetriesAdminAPI: `audit --follow` through the admin API
// outlives requests that fail (Caddy restarting, its store failing): it
// warns once, says when it reads again, goes on from the last event it
// printed, and ends on a refused authorisation.
func TestAuditFollowRetriesAdminAPI(t *testing.T) {
	api, addr := startFakeAuditAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, done := followCLI(ctx, "audit", "--follow", "--interval=20ms", addr)
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "first") }, "the first event", stdout, stderr)
	afters := followThroughOutage(t, api, done, []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusBadGateway}, stdout, stderr)
	for _, a := range afters {
		if a != "1" {
			t.Errorf("asked for events after %q during and after the outage, want after 1 throughout: %q", a, afters)
			break
		}
	}
	out, errOut := stdout.String(), stderr.String()
	for _, want := range []string{"first", "second"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("event %q printed %d times, want once:\n%s", want, n, out)
		}
	}
	if n := strings.Count(errOut, followWarning); n != 1 || !strings.Contains(errOut, "Internal Server Error (fake)") {
		t.Errorf("%d warnings, want one, naming the first failure:\n%s", n, errOut)
	}
	if n := strings.Count(errOut, followResumed); n != 1 || !strings.Contains(errOut, "after event 1") {
		t.Errorf("%d lines saying it reads again, want one, after event 1:\n%s", n, errOut)
	}
	if strings.Contains(out, followWarning) || strings.Contains(out, followResumed) {
		t.Errorf("the warnings went to stdout:\n%s", out)
	}

	// A refused authorisation does not mend: it ends the follower.
	api.setFail(http.StatusUnauthorized)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("ended with %v, want the 401", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("audit --follow goes on after a 401:\n%s", stderr)
	}
}

// TestAuditFollowJSONRetries: with --json, stdout stays JSON Lines through
// an outage (the warnings go to stderr), and a 403 ends it with the
// {"error", "status"} line.
func TestAuditFollowJSONRetries(t *testing.T) {
	api, addr := startFakeAuditAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, done := followCLI(ctx, "audit", "--follow", "--interval=20ms", "--json", addr)
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "first") }, "the first event", stdout, stderr)
	followThroughOutage(t, api, done, []int{http.StatusBadGateway}, stdout, stderr)
	api.setFail(http.StatusForbidden)
	select {
	case err := <-done:
		if err == nil {
			t.Error("ended without an error on a 403")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("audit --follow --json goes on after a 403:\n%s", stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	var reasons []string
	for i, l := range lines {
		var v struct {
			Seq    uint64 `json:"seq"`
			Reason string `json:"reason"`
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("stdout line %d is not JSON (%v):\n%s", i+1, err, stdout)
		}
		if i == len(lines)-1 {
			if v.Status != http.StatusForbidden {
				t.Errorf("last line %s, want the 403", l)
			}
			continue
		}
		reasons = append(reasons, v.Reason)
	}
	if !slices.Equal(reasons, []string{"first", "second"}) {
		t.Errorf("events %q, want first and second once each", reasons)
	}
	if errOut := stderr.String(); strings.Count(errOut, followWarning) != 1 || strings.Count(errOut, followResumed) != 1 {
		t.Errorf("stderr, want one warning and one line saying it reads again:\n%s", errOut)
	}
}

// TestAuditFollowFirstReadFailure: a failure of the first read still ends
// `audit --follow` at once, as it ends `audit`: nothing says the command
// can work.
func TestAuditFollowFirstReadFailure(t *testing.T) {
	api, addr := startFakeAuditAPI(t)
	api.setFail(http.StatusServiceUnavailable)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, stderr, done := followCLI(ctx, "audit", "--follow", "--interval=20ms", addr)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("ended with %v, want the 503", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("audit --follow retries a failed first read:\n%s", stderr)
	}
	if n, _ := api.requests(0); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestAuditFollowSurvivesDatabaseRestart: an operator follows the audit
// trail of a cluster (`caddy sso audit --follow --store postgres:…`) and
// the database restarts (a failover, a minor-version upgrade). The
// instances recover on their own (docs/cluster.md, "Failover"); the
// follower does too, and prints what is audited after, once.
func TestAuditFollowSurvivesDatabaseRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{})
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	dsn, err := pg.CreateDatabase(ctx, "sso")
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, postgres.Config{DSN: dsn, StatementTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	audit := func(reason string) {
		t.Helper()
		var err error
		for range 50 { // the pool reconnects after the restart
			if err = db.Update(ctx, func(tx store.Tx) error {
				return tx.Audit(store.Event{Type: store.EventLoginFailed, IdP: "test", Reason: reason})
			}); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal(err)
	}
	audit("before_restart")
	stdout, stderr, done := followCLI(ctx, "audit", "--follow", "--interval=200ms", "--store=postgres:"+dsn)
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "before_restart") }, "the first event", stdout, stderr)
	if err := pg.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	waitFollowing(t, done, func() bool { return strings.Contains(stderr.String(), followWarning) }, "the warning", stdout, stderr)
	time.Sleep(1500 * time.Millisecond) // more attempts while it is away
	if err := pg.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	audit("after_restart")
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "after_restart") }, "the event after the restart", stdout, stderr)
	out, errOut := stdout.String(), stderr.String()
	for _, want := range []string{"before_restart", "after_restart"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("event %q printed %d times, want once:\n%s", want, n, out)
		}
	}
	if strings.Count(errOut, followWarning) != 1 || strings.Count(errOut, followResumed) != 1 {
		t.Errorf("stderr, want one warning and one line saying it reads again:\n%s", errOut)
	}
}

// TestAuditFollowEndsWhenStoreGoes: a database that no longer holds a
// caddy-sso store (its tables dropped) does not mend by waiting: the
// follower ends with the error.
func TestAuditFollowEndsWhenStoreGoes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, db := openPG(t)
	if err := db.Update(ctx, func(tx store.Tx) error {
		return tx.Audit(store.Event{Type: store.EventLoginFailed, IdP: "test", Reason: "first"})
	}); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, done := followCLI(ctx, "audit", "--follow", "--interval=50ms", "--store=postgres:"+dsn)
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "first") }, "the first event", stdout, stderr)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP TABLE sso_audit"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "42P01") {
			t.Errorf("ended with %v, want the missing table's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("audit --follow goes on without a store:\n%s", stderr)
	}
}

// TestAuditFollowPausesBetweenFailures: while the trail cannot be read,
// `audit --follow` waits between attempts (--interval, doubling), rather
// than asking a Caddy that is failing or restarting as fast as it answers.
func TestAuditFollowPausesBetweenFailures(t *testing.T) {
	api, addr := startFakeAuditAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, done := followCLI(ctx, "audit", "--follow", "--interval=100ms", addr)
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "first") }, "the first event", stdout, stderr)
	api.setFail(http.StatusServiceUnavailable)
	before, _ := api.requests(0)
	time.Sleep(time.Second)
	after, _ := api.requests(0)
	api.setFail(0)
	// Pauses of 100, 200, 400 and 500 ms: some 4 attempts in the second,
	// and one that was under way.
	if n := after - before; n > 6 {
		t.Errorf("%d attempts in one second of failures with --interval=100ms, want at most 6", n)
	}
	waitFollowing(t, done, func() bool { return strings.Contains(stderr.String(), followResumed) }, "the trail read again", stdout, stderr)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("audit --follow ended with %v", err)
	}
}

// TestAuditFollowIgnoresLimit: --limit is ignored with --follow, as its
// help says: a follower prints every event there at once (it does not stop
// at --limit and print the rest an --interval later).
func TestAuditFollowIgnoresLimit(t *testing.T) {
	api, addr := startFakeAuditAPI(t)
	api.add("second")
	api.add("third")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, done := followCLI(ctx, "audit", "--follow", "--limit=1", "--interval=1h", addr)
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "third") }, "the three events, with --limit=1 --interval=1h", stdout, stderr)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("audit --follow --limit=1 ended with %v", err)
	}
	for _, want := range []string{"first", "second", "third"} {
		if n := strings.Count(stdout.String(), want); n != 1 {
			t.Errorf("event %q printed %d times, want once:\n%s", want, n, stdout)
		}
	}
}

// TestAuditRefusedWith400: the admin API's 400 (a query it refuses) is the
// command's error, with its message and status, not an empty trail.
func TestAuditRefusedWith400(t *testing.T) {
	api, addr := startFakeAuditAPI(t)
	api.setFail(http.StatusBadRequest)
	out, err := cli(context.Background(), "audit", addr)
	if want := "Bad Request (fake) (HTTP 400 Bad Request)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("audit answered 400: %v, want an error with %q\n%s", err, want, out)
	}
}

// TestAuditFollowInterruptedBeforeFirstRead: Ctrl-C (the command's context
// ending) while `audit --follow` waits for its first read ends it as at
// any other time: quietly, without an error.
func TestAuditFollowInterruptedBeforeFirstRead(t *testing.T) {
	p := newAdminProxy(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, stderr, done := followCLI(ctx, "audit", "--follow", p.address(), "--timeout=30s")
	cliWaitFor(t, func() bool { held, _ := p.counts(); return held >= 1 }, "the first read to wait")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("audit --follow interrupted during its first read ended with %v\n%s", err, stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("audit --follow goes on after its context ended")
	}
}

// TestAuditLaterPageFails: `audit` without --follow that has printed a
// page of the trail and then cannot read the next (the admin API answers
// 500, or the endpoint goes away mid-listing) ends at once with that
// failure as its error, and non-zero, keeping the events it printed: it
// neither retries nor passes the rest off as the end of the trail.
func TestAuditLaterPageFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		later func(w http.ResponseWriter, r *http.Request, api *fakeAuditAPI) // the answer to every request after the first
		want  string
	}{
		{"500", func(w http.ResponseWriter, r *http.Request, api *fakeAuditAPI) {
			api.setFail(http.StatusInternalServerError)
			api.ServeHTTP(w, r)
		}, "Internal Server Error (fake) (HTTP 500 Internal Server Error)"},
		{"endpoint gone", func(w http.ResponseWriter, _ *http.Request, _ *fakeAuditAPI) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close() // as a Caddy stopped mid-listing
			}
		}, "cannot reach Caddy's admin endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAuditAPI{}
			for range account.MaxPageSize + 5 {
				api.add("listed")
			}
			var mu sync.Mutex
			requests := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				requests++
				first := requests == 1
				mu.Unlock()
				if first {
					api.ServeHTTP(w, r)
				} else {
					tc.later(w, r, api)
				}
			}))
			t.Cleanup(srv.Close)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stdout, stderr, done := followCLI(ctx, "audit", "--json", "--address="+srv.Listener.Addr().String())
			var err error
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("audit still running after 15s and %d requests:\n%s", requests, stderr.String())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ended with %v, want an error with %q", err, tc.want)
			}
			out := stdout.String()
			if n := strings.Count(out, `"reason":"listed"`); n != account.MaxPageSize {
				t.Errorf("printed %d events, want the first page's %d kept", n, account.MaxPageSize)
			}
			if !strings.HasSuffix(out, "}\n") || !strings.Contains(out[strings.LastIndex(out[:len(out)-1], "\n")+1:], `"error"`) {
				t.Errorf("the last line of stdout is not the JSON error:\n%.300s", out[max(0, len(out)-300):])
			}
		})
	}
}
