package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/store"
)

// cliBuffer is an output buffer a following command writes while the test reads.
type cliBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *cliBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *cliBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// cli runs `caddy sso <args>` in this process and returns its output.
func cli(ctx context.Context, args ...string) (string, error) {
	cmd := caddymodule.NewCommand()
	out := new(cliBuffer)
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// mustCLI runs the command and fails the test on an error.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(context.Background(), args...)
	if err != nil {
		t.Fatalf("caddy sso %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (g *gateway) addressFlag() string { return fmt.Sprintf("--address=127.0.0.1:%d", g.adminPort) }

func TestCLIAgainstRunningCaddy(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	g := w.gw
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(g.base+"/", "ada", "ada-pw"))
	ada := userBySubject(t, "sub-ada")
	adminAddUsers(t, 3, "other.example")
	addr := g.addressFlag()

	// users list: a table by default, JSON with --json, search, limit.
	out := mustCLI(t, "users", "list", addr)
	for _, want := range []string{"ID", "EMAIL", "LAST LOGIN", ada.ID, "ada@example.com", "Ada Lovelace", "jit", "active", "4 user(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("users list lacks %q:\n%s", want, out)
		}
	}
	var listed []*store.User
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "list", "--query", "other.example", "--json", addr)), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 3 {
		t.Errorf("--query other.example --json listed %d users, want 3", len(listed))
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "list", "--limit", "2", "--json", addr)), &listed); err != nil || len(listed) != 2 {
		t.Errorf("--limit 2 listed %d users (%v)", len(listed), err)
	}

	// users show
	out = mustCLI(t, "users", "show", ada.ID, addr)
	for _, want := range []string{"ada@example.com", "Source:", "jit", "Link:", "test: sub-ada", "Last login:", "1 session(s)", "EXPIRES"} {
		if !strings.Contains(out, want) {
			t.Errorf("users show lacks %q:\n%s", want, out)
		}
	}
	var d caddymodule.UserDetail
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "show", ada.ID, "--json", addr)), &d); err != nil || d.User.ID != ada.ID || len(d.Sessions) != 1 {
		t.Errorf("users show --json = %+v (%v)", d, err)
	}
	if _, err := cli(context.Background(), "users", "show", "nobody", addr); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("show of a missing user: %v", err)
	}

	// users disable: the old session stops at once.
	if out := mustCLI(t, "users", "disable", ada.ID, addr); !strings.Contains(out, "disabled") {
		t.Errorf("disable said %q", out)
	}
	refusedWithoutIdP(t, w, b)
	if out := mustCLI(t, "users", "list", "--query", "ada", addr); !strings.Contains(out, "disabled") {
		t.Errorf("list after disable:\n%s", out)
	}

	// users enable, then sessions revoke.
	var u store.User
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "enable", ada.ID, "--json", addr)), &u); err != nil || !u.Active {
		t.Errorf("enable --json = %+v (%v)", u, err)
	}
	upstreamSaw(t, b.signIn(g.base+"/", "ada", "ada-pw"))
	if out := mustCLI(t, "sessions", "revoke", ada.ID, addr); !strings.Contains(out, "1 session(s)") {
		t.Errorf("sessions revoke said %q", out)
	}
	refusedWithoutIdP(t, w, b)

	// audit: filters, table and JSON lines.
	out = mustCLI(t, "audit", "--user", ada.ID, "--since", "1h", addr)
	for _, want := range []string{"SEQ", store.EventUserCreated, store.EventUserDeactivated, store.EventUserActivated, store.EventSessionRevoked, "admin_revoked"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}
	out = mustCLI(t, "audit", "--type", store.EventUserActivated, "--json", addr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Errorf("audit --type --json printed %d lines:\n%s", len(lines), out)
	}
	var e store.Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Type != store.EventUserActivated || e.UserID != ada.ID {
		t.Errorf("audit JSON line %q (%v)", lines[0], err)
	}

	// audit --follow prints what happens while it runs.
	ctx, cancel := context.WithCancel(context.Background())
	out2 := new(cliBuffer)
	done := make(chan error, 1)
	go func() {
		cmd := caddymodule.NewCommand()
		cmd.SetOut(out2)
		cmd.SetErr(out2)
		cmd.SetArgs([]string{"audit", "--follow", "--json", "--type", store.EventUserDeactivated, addr})
		done <- cmd.ExecuteContext(ctx)
	}()
	cliWaitFor(t, func() bool { return strings.Count(out2.String(), "\n") >= 1 }, "the existing event")
	mustCLI(t, "users", "disable", ada.ID, addr)
	cliWaitFor(t, func() bool { return strings.Count(out2.String(), "\n") >= 2 }, "the new event")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("audit --follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("audit --follow did not stop when interrupted")
	}

	// backup
	file := t.TempDir() + "/backup.db"
	if out := mustCLI(t, "backup", file, addr); !strings.Contains(out, "backup written") {
		t.Errorf("backup said %q", out)
	}
	readStore(t, file, func(tx store.Tx) error {
		_, err := tx.User(ada.ID)
		return err
	})

	// users delete
	mustCLI(t, "users", "delete", ada.ID, addr)
	if _, err := cli(context.Background(), "users", "show", ada.ID, addr); err == nil {
		t.Error("the deleted user is still shown")
	}
	if out := mustCLI(t, "audit", "--type", store.EventUserDeleted, addr); !strings.Contains(out, ada.ID) {
		t.Errorf("deletion not audited:\n%s", out)
	}
}

func cliWaitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCLIOfflineRefusesLockedStore(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	path := w.gw.dir + "/sso.db"
	backup := t.TempDir() + "/good.db"
	mustCLI(t, "backup", backup, w.gw.addressFlag())
	for _, args := range [][]string{
		{"users", "list"},
		{"users", "disable", "someone"},
		{"audit"},
		{"backup", t.TempDir() + "/b.db"},
		{"restore", backup},
	} {
		out, err := cli(context.Background(), append(args, "--store", path)...)
		if err == nil || !strings.Contains(err.Error(), "the store is in use by a running Caddy; use the admin API (omit --store) or stop Caddy") {
			t.Errorf("%v on a running store: %v\n%s", args, err, out)
		}
	}
}

func TestCLIOffline(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/", "ada", "ada-pw"))
	ada := userBySubject(t, "sub-ada")
	adminAddUsers(t, 2, "other.example")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	st := "--store=" + w.gw.dir + "/sso.db"

	if out := mustCLI(t, "users", "list", st); !strings.Contains(out, ada.ID) || !strings.Contains(out, "3 user(s)") {
		t.Errorf("offline users list:\n%s", out)
	}
	if out := mustCLI(t, "users", "show", ada.ID, st); !strings.Contains(out, "test: sub-ada") || !strings.Contains(out, "1 session(s)") {
		t.Errorf("offline users show:\n%s", out)
	}
	mustCLI(t, "users", "disable", ada.ID, st)
	var d caddymodule.UserDetail
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "show", ada.ID, "--json", st)), &d); err != nil || d.User.Active || len(d.Sessions) != 0 {
		t.Errorf("offline disable left %+v (%v)", d, err)
	}
	mustCLI(t, "users", "enable", ada.ID, st)
	if out := mustCLI(t, "sessions", "revoke", ada.ID, st); !strings.Contains(out, "0 session(s)") {
		t.Errorf("offline revoke said %q", out)
	}
	out := mustCLI(t, "audit", "--user", ada.ID, st)
	for _, want := range []string{store.EventUserDeactivated, store.EventUserActivated, store.EventSessionRevoked} {
		if !strings.Contains(out, want) {
			t.Errorf("offline audit lacks %q:\n%s", want, out)
		}
	}
	file := t.TempDir() + "/offline-backup.db"
	mustCLI(t, "backup", file, st)
	mustCLI(t, "users", "delete", ada.ID, st)
	if _, err := cli(context.Background(), "users", "show", ada.ID, st); err == nil {
		t.Error("offline delete left the user")
	}
	readStore(t, file, func(tx store.Tx) error {
		_, err := tx.User(ada.ID)
		return err
	})
	if _, err := cli(context.Background(), "users", "list", "--store", t.TempDir()+"/missing.db"); err == nil || !strings.Contains(err.Error(), "no store at") {
		t.Errorf("offline on a missing file: %v", err)
	}
}

// TestCLIBackupRestore backs a running store up through the admin API,
// restores it into a fresh instance's store file, and finds the same
// users, links and audit trail there, offline and served by a new Caddy.
func TestCLIBackupRestore(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n").start()
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	ada := userBySubject(t, "sub-ada")
	adminAddUsers(t, 3, "other.example")
	addr := w.gw.addressFlag()
	mustCLI(t, "users", "disable", ada.ID, addr)
	mustCLI(t, "users", "enable", ada.ID, addr)

	wantUsers := mustCLI(t, "users", "list", "--json", addr)
	wantAudit := mustCLI(t, "audit", "--json", addr)
	file := t.TempDir() + "/backup.db"
	mustCLI(t, "backup", file, addr)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	fresh := newGateway(t)
	dst := fresh.dir + "/sso.db"
	if out := mustCLI(t, "restore", file, "--store", dst); !strings.Contains(out, "restored") {
		t.Errorf("restore said %q", out)
	}
	if info, err := os.Stat(dst); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("restored file: %v %v", info, err)
	}
	if got := mustCLI(t, "users", "list", "--json", "--store", dst); got != wantUsers {
		t.Errorf("restored users differ:\n%s\nwant\n%s", got, wantUsers)
	}
	if got := mustCLI(t, "audit", "--json", "--store", dst); got != wantAudit {
		t.Errorf("restored audit differs:\n%s\nwant\n%s", got, wantAudit)
	}

	// A fresh Caddy on the restored store knows the user by their link.
	idpBlock := fmt.Sprintf("\t\tidp test oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t}\n",
		w.idp.Issuer, clientID, clientSecret)
	fresh.start(fresh.caddyfile(idpBlock, fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", fresh.base, w.upstream.hostPort())))
	if got := userBySubject(t, "sub-ada"); got.ID != ada.ID {
		t.Errorf("restored store maps sub-ada to %s, want %s", got.ID, ada.ID)
	}
	var d caddymodule.UserDetail
	fresh.adminJSON(http.MethodGet, "/sso/users/"+ada.ID, http.StatusOK, &d)
	if len(d.User.Links) != 1 || d.User.Links[0].Subject != "sub-ada" {
		t.Errorf("restored user links = %+v", d.User.Links)
	}
}
