package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
)

// cli runs `caddy sso <args>` and returns its output.
var cli = caddytest.RunCLI

// mustCLI runs the command and fails the test on an error.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(context.Background(), args...)
	if err != nil {
		t.Fatalf("caddy sso %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestCLIAgainstRunningCaddy(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	g := w.GW
	b := caddytest.NewBrowser(t)
	caddytest.UpstreamSaw(t, b.SignIn(g.Base+"/", "ada", "ada-pw"))
	ada := caddytest.UserBySubject(t, "sub-ada")
	caddytest.AddUsers(t, 3, "other.example")
	addr := g.AddressFlag()

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
	for _, want := range []string{"ada@example.com", "Source:", "jit", "Link:", "test: sub-ada", "Last login:", "1 session(s)", "EXPIRES", "AUTHENTICATED"} {
		if !strings.Contains(out, want) {
			t.Errorf("users show lacks %q:\n%s", want, out)
		}
	}
	var d account.UserDetail
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "show", ada.ID, "--json", addr)), &d); err != nil || d.User.ID != ada.ID || len(d.Sessions) != 1 {
		t.Errorf("users show --json = %+v (%v)", d, err)
	} else if s := d.Sessions[0]; s.AuthTime.IsZero() || s.AuthTime.After(s.Created) {
		// The test IdP says auth_time: the session shows when Ada
		// authenticated there, which is before the session was made.
		t.Errorf("users show --json: session auth_time %v, created %v", s.AuthTime, s.Created)
	}
	// Errors say what is wrong in the operator's terms, never the backend's.
	if _, err := cli(context.Background(), "users", "show", "nobody", addr); err == nil ||
		err.Error() != `user "nobody" not found (HTTP 404 Not Found)` {
		t.Errorf("show of a missing user: %v", err)
	}

	// users disable: the old session stops at once.
	if out := mustCLI(t, "users", "disable", ada.ID, addr); !strings.Contains(out, "disabled") {
		t.Errorf("disable said %q", out)
	}
	b.Refused(w.GW.Base + "/private")
	if out := mustCLI(t, "users", "list", "--query", "ada", addr); !strings.Contains(out, "disabled") {
		t.Errorf("list after disable:\n%s", out)
	}

	// users enable, then sessions revoke.
	var u store.User
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "enable", ada.ID, "--json", addr)), &u); err != nil || !u.Active {
		t.Errorf("enable --json = %+v (%v)", u, err)
	}
	caddytest.UpstreamSaw(t, b.SignIn(g.Base+"/", "ada", "ada-pw"))
	if out := mustCLI(t, "sessions", "revoke", ada.ID, addr); !strings.Contains(out, "1 session(s)") {
		t.Errorf("sessions revoke said %q", out)
	}
	b.Refused(w.GW.Base + "/private")

	// audit: filters, table and JSON lines.
	out = mustCLI(t, "audit", "--user", ada.ID, "--since", "1h", addr)
	for _, want := range []string{"SEQ", store.EventUserCreated, store.EventUserDeactivated, store.EventUserActivated, store.EventSessionRevoked, "revoked", "by=admin"} {
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
	out2 := new(caddytest.Output)
	done := make(chan error, 1)
	go func() {
		done <- caddytest.CLI(ctx, out2, "audit", "--follow", "--json", "--type", store.EventUserDeactivated, addr)
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
	caddytest.ReadBackup(t, file, func(tx store.Tx) error {
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
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	path := w.GW.StorePath()
	backup := t.TempDir() + "/good.db"
	mustCLI(t, "backup", backup, w.GW.AddressFlag())
	const inUse = "the store is in use by a running Caddy; use the admin API (omit --store) or stop Caddy"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "list"}, inUse},
		{[]string{"users", "disable", "someone"}, inUse},
		{[]string{"audit"}, inUse},
		{[]string{"backup", t.TempDir() + "/b.db"}, inUse},
		// Restore has no admin API to use: omitting --store would write the default store.
		{[]string{"restore", backup}, "in use by a running Caddy, and restore and migrate work offline only: stop that Caddy"},
	} {
		out, err := cli(context.Background(), append(tc.args, "--store", path)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v on a running store: %v\n%s", tc.args, err, out)
		}
	}
}

func TestCLIOffline(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	b := caddytest.NewBrowser(t)
	caddytest.UpstreamSaw(t, b.SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	ada := caddytest.UserBySubject(t, "sub-ada")
	caddytest.AddUsers(t, 2, "other.example")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	st := "--store=" + w.GW.StorePath()

	if out := mustCLI(t, "users", "list", st); !strings.Contains(out, ada.ID) || !strings.Contains(out, "3 user(s)") {
		t.Errorf("offline users list:\n%s", out)
	}
	if out := mustCLI(t, "users", "show", ada.ID, st); !strings.Contains(out, "test: sub-ada") || !strings.Contains(out, "1 session(s)") {
		t.Errorf("offline users show:\n%s", out)
	}
	mustCLI(t, "users", "disable", ada.ID, st)
	var d account.UserDetail
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
	caddytest.ReadBackup(t, file, func(tx store.Tx) error {
		_, err := tx.User(ada.ID)
		return err
	})
	for _, args := range [][]string{{"users", "show", "nobody"}, {"users", "disable", "nobody"}, {"users", "delete", "nobody"}, {"sessions", "revoke", "nobody"}} {
		if _, err := cli(context.Background(), append(args, st)...); err == nil || err.Error() != `user "nobody" not found` {
			t.Errorf("offline %v of a missing user: %v", args, err)
		}
	}
}

// TestOfflineCommandsRefuseMissingStore: a --store path that holds no
// store (mistyped, or another user's data directory) is refused, and
// nothing is created there. Opened read-write, bbolt would create the
// file, and `keys rotate` reported "rotated" on that new, empty store
// while the real store kept the leaked keys it was run to replace.
func TestOfflineCommandsRefuseMissingStore(t *testing.T) {
	for _, args := range [][]string{
		{"users", "list"},
		{"users", "disable", "someone"},
		{"sessions", "revoke", "someone"},
		{"keys", "rotate"},
		{"keys", "finish", "--now"},
		{"saml-key", "test", "--out", filepath.Join(t.TempDir(), "key.pem")},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "typo", "sso.db")
			_, err := cli(context.Background(), append(args, "--store", path)...)
			if err == nil || !strings.Contains(err.Error(), "no store at") {
				t.Errorf("ended with %v, want no store at %s", err, path)
			}
			if _, err := os.Stat(filepath.Dir(path)); err == nil {
				t.Errorf("%s was created", filepath.Dir(path))
			}
		})
	}
}

// TestCLIBackupRestore backs a running store up through the admin API,
// restores it into a fresh instance's store file, and finds the same
// users, links and audit trail there, offline and served by a new Caddy.
func TestCLIBackupRestore(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	caddytest.UpstreamSaw(t, caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	ada := caddytest.UserBySubject(t, "sub-ada")
	caddytest.AddUsers(t, 3, "other.example")
	addr := w.GW.AddressFlag()
	mustCLI(t, "users", "disable", ada.ID, addr)
	mustCLI(t, "users", "enable", ada.ID, addr)

	wantUsers := mustCLI(t, "users", "list", "--json", addr)
	file := t.TempDir() + "/backup.db"
	mustCLI(t, "backup", file, addr)
	// After the backup: it holds the trail with its own store.backed_up.
	wantAudit := mustCLI(t, "audit", "--json", addr)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	fresh := caddytest.NewGateway(t)
	dst := fresh.StorePath()
	if out := mustCLI(t, "restore", file, "--store", dst); !strings.Contains(out, "restored") {
		t.Errorf("restore said %q", out)
	}
	if info, err := os.Stat(dst); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("restored file: %v %v", info, err)
	}
	if got := mustCLI(t, "users", "list", "--json", "--store", dst); got != wantUsers {
		t.Errorf("restored users differ:\n%s\nwant\n%s", got, wantUsers)
	}
	// The backup's trail, and then the restore's own event.
	got := mustCLI(t, "audit", "--json", "--store", dst)
	extra, ok := strings.CutPrefix(got, wantAudit)
	if !ok || strings.Count(extra, "\n") != 1 || !strings.Contains(extra, `"type":"`+account.EventStoreRestored+`"`) {
		t.Errorf("restored audit differs:\n%s\nwant\n%s\nand then one %s event", got, wantAudit, account.EventStoreRestored)
	}

	// A fresh Caddy on the restored store knows the user by their link.
	idpBlock := fmt.Sprintf("\t\tidp test oidc {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tjit\n\t\t}\n",
		w.IdP.Issuer, caddytest.ClientID, caddytest.ClientSecret)
	fresh.Start(fresh.Caddyfile(idpBlock, fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", fresh.Base, w.Upstream.HostPort())))
	if got := caddytest.UserBySubject(t, "sub-ada"); got.ID != ada.ID {
		t.Errorf("restored store maps sub-ada to %s, want %s", got.ID, ada.ID)
	}
	var d account.UserDetail
	fresh.AdminJSON(http.MethodGet, "/sso/users/"+ada.ID, http.StatusOK, &d)
	if len(d.User.Links) != 1 || d.User.Links[0].Subject != "sub-ada" {
		t.Errorf("restored user links = %+v", d.User.Links)
	}
}

// TestCLIAuditUnknownType: a misspelt --type is an error naming the types
// there are (it used to print nothing), and the help lists them.
func TestCLIAuditUnknownType(t *testing.T) {
	_, err := cli(context.Background(), "audit", "--type", "user.disabled", "--store", t.TempDir()+"/never-opened.db")
	if err == nil || !strings.Contains(err.Error(), `unknown event type "user.disabled"`) || !strings.Contains(err.Error(), store.EventUserDeactivated) {
		t.Errorf("audit --type user.disabled: %v", err)
	}
	help := mustCLI(t, "audit", "--help")
	for _, typ := range account.EventTypes {
		if !strings.Contains(help, "\n  "+typ+"\n") {
			t.Errorf("audit --help does not list %s:\n%s", typ, help)
		}
	}
}

// TestCLIAuditFollowLinesUp follows the audit trail as a table while
// events of growing widths arrive: every row's columns start where the
// header above it says.
func TestCLIAuditFollowLinesUp(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	audit := func(e store.Event) {
		t.Helper()
		if err := caddytest.RunningStore(t).Update(context.Background(), func(tx store.Tx) error { return tx.Audit(e) }); err != nil {
			t.Fatal(err)
		}
	}
	audit(store.Event{Type: store.EventLoginFailed, IdP: "test", Reason: "oidc_state_mismatch"})
	ctx, cancel := context.WithCancel(context.Background())
	out := new(caddytest.Output)
	done := make(chan error, 1)
	go func() { done <- caddytest.CLI(ctx, out, "audit", "--follow", w.GW.AddressFlag()) }()
	cliWaitFor(t, func() bool { return strings.Count(out.String(), "\n") >= 2 }, "the first event")
	audit(store.Event{Type: store.EventUserDeactivated, IdP: "test", UserID: "u1", Reason: "admin"})
	audit(store.Event{Type: store.EventLoginDenied, IdP: "a-much-longer-idp-name", UserID: "u2",
		Subject: strings.Repeat("s", 40), Reason: "deprovisioned", Detail: map[string]string{"deleted_user": "u3"}})
	cliWaitFor(t, func() bool { return strings.Contains(out.String(), "deleted_user=u3") }, "the wide event")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	var starts []int // column starts of the last header
	rows := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "SEQ ") {
			starts = starts[:0]
			for i := 1; i < len(l); i++ {
				if l[i] != ' ' && l[i-1] == ' ' {
					starts = append(starts, i)
				}
			}
			continue
		}
		if starts == nil {
			t.Fatalf("a row before any header:\n%s", out)
		}
		rows++
		for _, p := range starts {
			if p >= len(l) || l[p] == ' ' || l[p-1] != ' ' {
				t.Errorf("row %q does not line up with its header at column %d:\n%s", l, p, out)
				break
			}
		}
	}
	if rows != 3 {
		t.Errorf("%d rows, want 3:\n%s", rows, out)
	}
}

// TestCLIUsersShowWhatSessionsHold: `users show` (and GET /sso/users/{id})
// shows, for a person's right of access, everything a session holds
// besides its times: whether the IdP's tokens are stored (never their
// value) and how the IdP named the person and the session (OIDC sub and
// sid here), in the table and in --json.
func TestCLIUsersShowWhatSessionsHold(t *testing.T) {
	w := caddytest.NewOIDC(t, "\t\t\tjit\n").Start()
	caddytest.UpstreamSaw(t, caddytest.NewBrowser(t).SignIn(w.GW.Base+"/", "ada", "ada-pw"))
	ada := caddytest.UserBySubject(t, "sub-ada")
	var stored store.Session
	var sealed []byte
	caddytest.View(t, func(tx store.Tx) error {
		ss, err := tx.UserSessions(ada.ID)
		if err != nil || len(ss) != 1 {
			return fmt.Errorf("sessions of ada: %d, %w", len(ss), err)
		}
		stored = *ss[0]
		sealed, err = tx.SessionTokens(stored.Hash)
		return err
	})
	if len(sealed) == 0 || stored.Logout.Subject != "sub-ada" || stored.Logout.SessionID == "" {
		t.Fatalf("the sign-in stored %d bytes of tokens and logout data %+v: nothing to show", len(sealed), stored.Logout)
	}
	addr := w.GW.AddressFlag()

	out := mustCLI(t, "users", "show", ada.ID, addr)
	for _, want := range []string{"TOKENS", "yes", "IDP SUBJECT", "IDP SESSION", "sub-ada", stored.Logout.SessionID} {
		if !strings.Contains(out, want) {
			t.Errorf("users show lacks %q:\n%s", want, out)
		}
	}
	js := mustCLI(t, "users", "show", ada.ID, "--json", addr)
	var d account.UserDetail
	if err := json.Unmarshal([]byte(js), &d); err != nil || len(d.Sessions) != 1 {
		t.Fatalf("users show --json: %v\n%s", err, js)
	}
	if s := d.Sessions[0]; !s.TokensStored || s.IdPSubject != "sub-ada" || s.IdPSession != stored.Logout.SessionID {
		t.Errorf("users show --json session = %+v, want tokens_stored, idp_subject sub-ada, idp_session %s", s, stored.Logout.SessionID)
	}
	for _, want := range []string{`"tokens_stored": true`, `"idp_subject": "sub-ada"`, `"idp_session": "` + stored.Logout.SessionID + `"`} {
		if !strings.Contains(js, want) {
			t.Errorf("users show --json lacks %s:\n%s", want, js)
		}
	}
	// No token: neither a JWT (the ID token) nor the sealed blob, nor the
	// session's hash.
	for _, leak := range []string{"eyJ", stored.Hash, fmt.Sprintf("%x", sealed[:16])} {
		if strings.Contains(out, leak) || strings.Contains(js, leak) {
			t.Errorf("users show prints %q, which is token material:\n%s\n%s", leak, out, js)
		}
	}
}
