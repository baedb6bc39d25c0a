package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// adminProxy stands between the CLI and an admin endpoint as a wedged
// Caddy, or something else listening at --address, would: it relays each
// connection to target, or accepts it and never answers (silent, or no
// target), or relays the answer a chunk at a time, or stops relaying the
// answer after some bytes.
type adminProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu         sync.Mutex
	silent     bool
	chunk      int           // with pause: relay the answer this many bytes at a time
	pause      time.Duration // between chunks
	stallAfter int           // > 0: relay this many bytes of the answer, then nothing
	held       int           // connections accepted and not answered
	released   int           // of those, the ones the client closed
}

func newAdminProxy(t *testing.T, target string) *adminProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &adminProxy{t: t, ln: ln, target: target, silent: target == ""}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(conn) })
		}
	})
	return p
}

func (p *adminProxy) address() string { return "--address=" + p.ln.Addr().String() }

func (p *adminProxy) set(f func(p *adminProxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// counts returns how many connections it held unanswered, and how many
// of them the client has closed.
func (p *adminProxy) counts() (held, released int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held, p.released
}

func (p *adminProxy) serve(conn net.Conn) {
	defer conn.Close()
	p.mu.Lock()
	silent, chunk, pause, stallAfter := p.silent, p.chunk, p.pause, p.stallAfter
	if silent {
		p.held++
	}
	p.mu.Unlock()
	if silent {
		// Read what the client sends and answer nothing, until the client
		// closes the connection (or the test ends: 5 minutes).
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
		_, err := io.Copy(io.Discard, conn)
		if err == nil {
			p.set(func(p *adminProxy) { p.released++ })
		}
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Minute)) // should a client never close
	clientDone := make(chan struct{})
	go func() { _, _ = io.Copy(up, conn); close(clientDone) }()
	buf := make([]byte, max(chunk, 32<<10))
	sent := 0
	for {
		n := len(buf)
		if chunk > 0 {
			n = chunk
		}
		n, err := up.Read(buf[:n])
		if stallAfter > 0 && sent+n > stallAfter {
			_, _ = conn.Write(buf[:stallAfter-sent])
			<-clientDone // until the client gives up
			return
		}
		if _, werr := conn.Write(buf[:n]); werr != nil || err != nil {
			return
		}
		sent += n
		time.Sleep(pause)
	}
}

// TestRestoreAdminEndpointNeverAnswers: restore asks the admin endpoint
// whether a Caddy runs the sso app before it writes; that question, too,
// waits no longer than --timeout (it waited the default 30 s).
func TestRestoreAdminEndpointNeverAnswers(t *testing.T) {
	p := newAdminProxy(t, "")
	start := time.Now()
	_, _, err := run("restore", filepath.Join(t.TempDir(), "backup.jsonl.gz"), p.address(), "--timeout=300ms")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v, want about the 300ms of --timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "restore does not write through") {
		t.Errorf("ended with %v, want the refusal of --address", err)
	}
}

// TestCLIAdminEndpointNeverAnswers: every command that calls the admin API
// fails, within --timeout, with a sentence saying what happened and what
// to do, when the address accepts connections and answers nothing (a
// wedged Caddy, or something that listens and never speaks HTTP); it used
// to wait for good. The connections it gave up on are closed.
func TestCLIAdminEndpointNeverAnswers(t *testing.T) {
	p := newAdminProxy(t, "")
	const want = "accepted the connection but sent no answer within 300ms; is Caddy stuck or overloaded, or is something other than Caddy's admin endpoint listening there? --timeout raises the limit"
	for _, args := range [][]string{
		{"users", "list"},
		{"users", "show", "someone"},
		{"users", "disable", "someone"},
		{"sessions", "revoke", "someone"},
		{"audit"},
		{"backup", filepath.Join(t.TempDir(), "backup.jsonl.gz")},
		{"check", "--running"}, // its own --timeout, which is the admin request's too with --running
	} {
		t.Run(args[0]+" "+filepath.Base(args[len(args)-1]), func(t *testing.T) {
			start := time.Now()
			stdout, stderr, err := run(append(args, p.address(), "--timeout=300ms", "--json")...)
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), p.ln.Addr().String()+" "+want) {
				t.Fatalf("ended with %v, want %q", err, want)
			}
			if took > 5*time.Second {
				t.Errorf("took %v, want about the 300ms of --timeout", took)
			}
			var je struct {
				Error string `json:"error"`
			}
			if json.Unmarshal([]byte(stdout), &je) != nil || !strings.Contains(je.Error, want) {
				t.Errorf("stdout %q, want the JSON error (stderr %q)", stdout, stderr)
			}
		})
	}
	cliWaitFor(t, func() bool { held, released := p.counts(); return held >= 7 && released == held }, "the client to close every connection it gave up on")
}

// TestCLIAdminTimeoutFlag: --timeout is checked, and waits 30s when not
// given.
func TestCLIAdminTimeoutFlag(t *testing.T) {
	p := newAdminProxy(t, "")
	if _, _, err := run("users", "list", p.address(), "--timeout=0s"); err == nil || !strings.Contains(err.Error(), "--timeout 0s: want a positive duration") {
		t.Errorf("--timeout=0s: %v", err)
	}
	if out := mustCLI(t, "users", "list", "--help"); !strings.Contains(out, "--timeout duration") || !strings.Contains(out, "(default 30s)") {
		t.Errorf("users list --help does not give --timeout's default of 30s:\n%s", out)
	}
}

// TestAuditFollowThroughSilentAdmin: `audit --follow` treats a poll the
// admin endpoint leaves unanswered as a failed poll: it warns once, saying
// so, retries, and prints the events once the endpoint answers again, none
// skipped or repeated. No connection stays open per timed-out poll.
func TestAuditFollowThroughSilentAdmin(t *testing.T) {
	api, _ := startFakeAuditAPI(t)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	p := newAdminProxy(t, srv.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, done := followCLI(ctx, "audit", "--follow", "--interval=20ms", "--timeout=200ms", p.address())
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "first") }, "the first event", stdout, stderr)
	p.set(func(p *adminProxy) { p.silent = true })
	waitFollowing(t, done, func() bool { held, _ := p.counts(); return held >= 3 }, "three polls left unanswered", stdout, stderr)
	api.add("second")
	p.set(func(p *adminProxy) { p.silent = false })
	waitFollowing(t, done, func() bool { return strings.Contains(stdout.String(), "second") }, "the event added while the endpoint was silent", stdout, stderr)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("audit --follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("audit --follow did not stop when interrupted")
	}
	out, errOut := stdout.String(), stderr.String()
	for _, want := range []string{"first", "second"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("event %q printed %d times, want once:\n%s", want, n, out)
		}
	}
	if strings.Count(errOut, followWarning) != 1 || !strings.Contains(errOut, "sent no answer within 200ms") || strings.Count(errOut, followResumed) != 1 {
		t.Errorf("stderr, want one warning saying the endpoint did not answer, and one line saying it reads again:\n%s", errOut)
	}
	cliWaitFor(t, func() bool { held, released := p.counts(); return released == held }, "the client to close every connection it gave up on")
}

// TestCLIBackupSlowButSteady: --timeout bounds the waits for the answer
// and for more of it, not the whole answer: a backup that streams for
// longer than --timeout but keeps sending succeeds, and one that stops
// sending fails within it, saying so.
func TestCLIBackupSlowButSteady(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n")
	admin := fmt.Sprintf("127.0.0.1:%d", w.GW.AdminPort)
	p := newAdminProxy(t, admin)
	// Caddy's admin endpoint answers requests for the hosts it knows.
	w.GW.Start(strings.Replace(w.Caddyfile(), "admin "+admin+"\n",
		fmt.Sprintf("admin %s {\n\t\torigins %s %s\n\t}\n", admin, admin, p.ln.Addr()), 1))
	caddytest.AddUsers(t, 100, "other.example")
	direct := filepath.Join(t.TempDir(), "direct.jsonl.gz")
	mustCLI(t, "backup", direct, w.GW.AddressFlag())
	info, err := os.Stat(direct)
	if err != nil {
		t.Fatal(err)
	}
	// Some 60 chunks 50ms apart: 3s, three times --timeout, whose 1s leaves
	// Caddy room to begin the answer on a loaded machine (300ms did not).
	p.set(func(p *adminProxy) { p.chunk, p.pause = int(info.Size()/60)+1, 50*time.Millisecond })
	start := time.Now()
	if out := mustCLI(t, "backup", filepath.Join(t.TempDir(), "slow.jsonl.gz"), p.address(), "--timeout=1s"); !strings.Contains(out, "backup written") {
		t.Errorf("backup said %q", out)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("the slow backup took %v: the proxy did not slow it past --timeout", took)
	}

	p.set(func(p *adminProxy) { p.chunk, p.pause, p.stallAfter = 0, 0, int(info.Size()/2) })
	file := filepath.Join(t.TempDir(), "stalled.jsonl.gz")
	start = time.Now()
	_, err = cli(context.Background(), "backup", file, p.address(), "--timeout=1s")
	if err == nil || !strings.Contains(err.Error(), "stopped sending its answer: nothing came for 1s") {
		t.Errorf("a backup that stalls ended with %v, want the stall said", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a backup that stalls failed after %v, want about 1s", took)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stalled backup left a file: %v", err)
	}
}

// TestCLIUnixSocketAdmin: an admin endpoint on a unix socket, its address
// with permission bits as Caddy's admin option takes it, is reached.
func TestCLIUnixSocketAdmin(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n")
	dir, err := os.MkdirTemp("", "sso-admin") // short: a socket's path has a limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	addr := "unix/" + filepath.Join(dir, "admin.sock") + "|0220"
	w.GW.Start(strings.Replace(w.Caddyfile(), fmt.Sprintf("admin 127.0.0.1:%d", w.GW.AdminPort), "admin "+addr, 1))
	caddytest.AddUsers(t, 2, "sock.example")
	if out := mustCLI(t, "users", "list", "--address="+addr); !strings.Contains(out, "user01@sock.example") {
		t.Errorf("users list over the unix socket:\n%s", out)
	}
	if _, err := cli(context.Background(), "users", "show", "nobody", "--address="+addr); err == nil ||
		err.Error() != `user "nobody" not found (HTTP 404 Not Found)` {
		t.Errorf("show of a missing user over the unix socket: %v", err)
	}
}

// TestCLIAdminAnswerNotJSON: an error status from something at --address
// that is not the sso module (a Caddy built without caddy-sso, another
// program) is reported as such with its status, in --json too, and
// nothing of its text reaches the terminal.
func TestCLIAdminAnswerNotJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such page \x1b[31mhere", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	stdout, _, err := run("users", "list", "--json", "--address="+srv.Listener.Addr().String())
	if err == nil || strings.Contains(err.Error(), "\x1b") || !strings.Contains(err.Error(), "did not answer as Caddy's admin endpoint with the sso module (it answered HTTP 404") {
		t.Errorf("ended with %q", err)
	}
	var je struct {
		Status int `json:"status"`
	}
	if json.Unmarshal([]byte(stdout), &je) != nil || je.Status != http.StatusNotFound {
		t.Errorf("stdout %q, want the status 404", stdout)
	}
}

// TestCheckRunningWaitsTheAdminDefault: check's own --timeout (each request
// to an IdP, 10s by default) is the admin request's only when given; without
// it `check --running` waits the admin default of 30s, since the running
// instance answers its store check only once that is done.
func TestCheckRunningWaitsTheAdminDefault(t *testing.T) {
	p := newAdminProxy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 13*time.Second)
	defer cancel()
	start := time.Now()
	_, err := cli(ctx, "check", "--running", p.address())
	if took := time.Since(start); took < 12*time.Second || err != nil && strings.Contains(err.Error(), "within 10s") {
		t.Errorf("check --running against a silent admin endpoint ended after %v with %v, want it still waiting at 13s (30s)", took.Round(time.Millisecond), err)
	}
}

// TestCLIInterruptedWhileWaiting: a command ended while it waits for the
// admin endpoint (Ctrl-C, or its context's deadline) says so; it does not
// claim that Caddy could not be reached, nor to use --store.
func TestCLIInterruptedWhileWaiting(t *testing.T) {
	p := newAdminProxy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := cli(ctx, "users", "list", p.address(), "--timeout=30s")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "cannot reach") || strings.Contains(err.Error(), "--store") {
		t.Errorf("users list ended by its context while the endpoint is silent: %v, want the context's end, not %q", err, "cannot reach")
	}
}

// TestCLIAdminTimeoutDribbledBody: --timeout is what README.md and
// operations.md say it is, with a real server sending the answer's body a
// few bytes at a time: the wait for the answer to begin, and then each
// wait for more of it, not the whole answer. An answer that keeps coming
// in parts sooner than --timeout apart is read to its end however long it
// takes in all (several times --timeout here); one with a gap longer
// than --timeout fails after about --timeout, saying the endpoint stopped
// sending.
func TestCLIAdminTimeoutDribbledBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	api := &fakeAuditAPI{}
	api.add("dribbled")
	for _, tc := range []struct {
		name string
		gap  func(part int) time.Duration // before each part after the first
		want string                       // in the error; "" for success
	}{
		{"steady", func(int) time.Duration { return timeout / 5 }, ""},
		{"stalls", func(part int) time.Duration {
			if part == 3 {
				return 10 * timeout
			}
			return timeout / 5
		}, "stopped sending its answer: nothing came for 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				api.ServeHTTP(rec, r)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				body := rec.Body.Bytes()
				const parts = 15 // some 15 * timeout/5: three times --timeout in all
				size := len(body)/parts + 1
				for part := 0; len(body) > 0; part++ {
					if part > 0 {
						select {
						case <-r.Context().Done(): // the client gave up
							return
						case <-time.After(tc.gap(part)):
						}
					}
					n := min(size, len(body))
					if _, err := w.Write(body[:n]); err != nil {
						return
					}
					http.NewResponseController(w).Flush()
					body = body[n:]
				}
			}))
			t.Cleanup(srv.Close)
			start := time.Now()
			out, err := cli(context.Background(), "audit", "--address="+srv.Listener.Addr().String(), "--timeout="+timeout.String())
			took := time.Since(start)
			if tc.want == "" {
				if err != nil || !strings.Contains(out, "dribbled") {
					t.Fatalf("ended with %v, want the event printed:\n%s", err, out)
				}
				if took < 2*timeout {
					t.Errorf("took %v: the answer did not take longer than --timeout in all", took)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ended with %v, want %q", err, tc.want)
			}
			if took > 5*timeout {
				t.Errorf("failed after %v, want about the %v of --timeout after the last part", took, timeout)
			}
		})
	}
}
