package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// notAdmin is how the CLI begins to say that --address reached something
// other than Caddy's admin endpoint with the sso API.
const notAdmin = " did not answer as Caddy's admin endpoint with the sso module (it answered HTTP "

// TestCLIAddressNotAdmin: --address naming a site of the gateway got that
// site's 401 ("authentication required (HTTP 401 Unauthorized)", as if the
// admin API wanted credentials), and naming another program got "reading
// the admin API's answer: invalid character '<'". Both now say what
// answered and what --address is; the admin endpoint still answers.
func TestCLIAddressNotAdmin(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	caddytest.AddUsers(t, 1, "admin.example")
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>app</title>")
	}))
	t.Cleanup(html.Close)
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":"host not allowed: 127.0.0.1"}`)
	}))
	t.Cleanup(refuser.Close)
	refusing := refuser.Listener.Addr().String()
	// A JSON answer of another media type (RFC 9457's problem+json, say)
	// is quoted as well.
	problem := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":"blocked by policy"}`)
	}))
	t.Cleanup(problem.Close)
	site := fmt.Sprintf("127.0.0.1:%d", w.GW.Port)
	plain := html.Listener.Addr().String()

	for _, tc := range []struct {
		name, addr, answered string
		status               int
		args                 []string
	}{
		{"gateway site", site, `401 application/json: "authentication required"`, http.StatusUnauthorized, []string{"users", "list"}},
		{"gateway site, a POST", site, `401 application/json: "authentication required"`, http.StatusUnauthorized, []string{"users", "disable", "someone"}},
		// Caddy's admin endpoint refusing before the module runs (an
		// `admin` block's origins): its reason, which is the fix, is kept.
		{"admin endpoint refusing the origin", refusing, `403 application/json: "host not allowed: 127.0.0.1"`, http.StatusForbidden, []string{"users", "list"}},
		{"a problem+json answer", problem.Listener.Addr().String(), `403 application/problem+json: "blocked by policy"`, http.StatusForbidden, []string{"users", "list"}},
		{"plain app", plain, "200 text/html", http.StatusOK, []string{"users", "list"}},
		{"plain app, audit", plain, "200 text/html", http.StatusOK, []string{"audit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--address", tc.addr)
			_, err := cli(context.Background(), args...)
			want := tc.addr + notAdmin + tc.answered + "); --address is the admin address of the Caddyfile's `admin` option, default localhost:2019"
			if err == nil || err.Error() != want {
				t.Errorf("caddy sso %s:\n got %v\nwant %s", strings.Join(args, " "), err, want)
			}
			// --json gives the same sentence and the status that came.
			stdout, _, err := run(append(args, "--json")...)
			var je struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
			}
			if err == nil || json.Unmarshal([]byte(stdout), &je) != nil || je.Error != want || je.Status != tc.status {
				t.Errorf("--json printed %q (%v), want the sentence and status %d", stdout, err, tc.status)
			}
		})
	}

	// The admin endpoint itself: its answers and its refusals as before.
	if out := mustCLI(t, "users", "list", w.GW.AddressFlag()); !strings.Contains(out, "user00@admin.example") {
		t.Errorf("users list at the admin address:\n%s", out)
	}
	if _, err := cli(context.Background(), "users", "show", "nobody", w.GW.AddressFlag()); err == nil ||
		err.Error() != `user "nobody" not found (HTTP 404 Not Found)` {
		t.Errorf("show of a missing user at the admin address: %v", err)
	}
}

// TestCLIAdminWithoutSSOApp: Caddy's admin endpoint with no sso app
// running answers before the API, marked by the module all the same: the
// CLI says the app is not running, not that the address is wrong.
func TestCLIAdminWithoutSSOApp(t *testing.T) {
	g := caddytest.NewGateway(t)
	g.Start("{\n" + g.GlobalOptions() + "}\n\n" + g.Base + " {\n\trespond ok\n}\n")
	_, err := cli(context.Background(), "users", "list", g.AddressFlag())
	if want := "the sso app is not running (HTTP 503 Service Unavailable)"; err == nil || err.Error() != want {
		t.Errorf("users list with no sso app: %v, want %s", err, want)
	}
}

// TestCLINotAdminAnswerBounded: what the CLI reads of something else at
// --address is bounded: a stream (an event stream's keep-alives, each
// restarting the read timeout) is not read at all, and a long JSON
// message is quoted only in part.
func TestCLINotAdminAnswerBounded(t *testing.T) {
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := fmt.Fprint(w, ":\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(stream.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := cli(ctx, "users", "list", "--timeout=2s", "--address="+stream.Listener.Addr().String())
	if d := time.Since(start); d > 4*time.Second || err == nil || !strings.Contains(err.Error(), "did not answer as Caddy's admin endpoint") {
		t.Errorf("users list against a stream: %v after %v, want the address named at once", err, d.Round(time.Millisecond))
	}

	// A JSON answer that never ends: only its start is read.
	jsonStream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":"`)
		for {
			if _, err := fmt.Fprint(w, strings.Repeat("A", 1<<10)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(jsonStream.Close)
	start = time.Now()
	_, err = cli(ctx, "users", "list", "--timeout=2s", "--address="+jsonStream.Listener.Addr().String())
	if d := time.Since(start); d > 4*time.Second || err == nil || !strings.Contains(err.Error(), "did not answer as Caddy's admin endpoint") {
		t.Errorf("users list against an endless JSON answer: %v after %v, want the address named once its start is read", err, d.Round(time.Millisecond))
	}

	long := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"error":%q}`, strings.Repeat("A", 1<<20))
	}))
	t.Cleanup(long.Close)
	if _, err := cli(ctx, "users", "list", "--address="+long.Listener.Addr().String()); err == nil || len(err.Error()) > 1000 {
		t.Errorf("a 1 MiB JSON message from something else: an error of %d bytes", len(fmt.Sprint(err)))
	}
}
