package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	ssocli "github.com/caddy-sso/caddy-sso/cli"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// run runs `caddy sso args` with stdout and stderr apart, as a script sees
// them.
func run(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := ssocli.NewCommand()
	cmd.SetOut(&o)
	cmd.SetErr(&e)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return o.String(), e.String(), err
}

// stoppedStore is a stopped instance's bbolt file with a pending user and
// an active one with two sessions.
func stoppedStore(t *testing.T) (path string, pending, active *store.User) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "sso.db")
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pending = &store.User{Email: "p@example.com", Active: true, Pending: true, Source: store.SourceJIT, IdP: "test", ExternalID: "sub-p"}
	active = &store.User{Email: "a@example.com", Active: true, Source: store.SourceJIT, IdP: "test", ExternalID: "sub-a"}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		for _, u := range []*store.User{pending, active} {
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		for i := range 2 {
			s := &store.Session{Hash: fmt.Sprintf("%064x", i+1), UserID: active.ID, IdP: "test", Created: now, Expires: now.Add(time.Hour), LastSeen: now}
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, pending, active
}

type jsonFailure struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// TestCLIJSONErrorOnStdout: with --json, a failure prints one line of JSON
// on stdout ({"error", and "status" when the admin API answered}), besides
// the message on stderr and the error (stdout was empty).
func TestCLIJSONErrorOnStdout(t *testing.T) {
	path, _, _ := stoppedStore(t)
	st := "--store=" + path
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "show", "nobody", "--json", st}, `user "nobody" not found`},
		{[]string{"users", "delete", "nobody", "--json", st}, `user "nobody" not found`},
		{[]string{"audit", "--type", "nope", "--json", st}, `unknown event type "nope"`},
		{[]string{"users", "show", "--json", st}, "accepts 1 arg(s)"},
	} {
		out, errOut, err := run(c.args...)
		var f jsonFailure
		if err == nil || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: err %v, stderr %q", c.args, err, errOut)
		}
		if jErr := json.Unmarshal([]byte(out), &f); jErr != nil || strings.Count(out, "\n") != 1 || !strings.Contains(f.Error, c.want) || f.Status != 0 {
			t.Errorf("%v: stdout %q (%v), want one line with the error and no status", c.args, out, jErr)
		}
	}
	// Without --json, stdout stays empty.
	if out, _, err := run("users", "show", "nobody", st); err == nil || out != "" {
		t.Errorf("without --json: %q, %v", out, err)
	}

	// The admin API's status comes along.
	w := caddytest.NewOIDC(t, "").Start()
	out, _, err := run("users", "show", "nobody", "--json", w.GW.AddressFlag())
	var f jsonFailure
	if jErr := json.Unmarshal([]byte(out), &f); err == nil || jErr != nil || f.Status != 404 || !strings.Contains(f.Error, `user "nobody" not found`) {
		t.Errorf("online: stdout %q (%v), err %v", out, jErr, err)
	}
}

// TestCLICountsAtLeastOne: --limit and --sessions below 1 are refused by
// the admin API's rule and words (they read as "all" and "the default").
func TestCLICountsAtLeastOne(t *testing.T) {
	path, _, active := stoppedStore(t)
	st := "--store=" + path
	for _, args := range [][]string{
		{"users", "list", "--limit", "-1", st},
		{"users", "list", "--limit", "0", st},
		{"audit", "--limit", "-5", st},
		{"audit", "--limit", "0", st},
		{"users", "show", active.ID, "--sessions", "-3", st},
		{"users", "show", active.ID, "--sessions", "0", st},
	} {
		_, _, err := run(args...)
		if err == nil || !strings.Contains(err.Error(), "must be a whole number of at least 1") {
			t.Errorf("%v: %v", args, err)
		}
	}
	out, _, err := run("users", "show", active.ID, "--sessions", "1", st)
	if err != nil || !strings.Contains(out, "the newest 1 shown") {
		t.Errorf("--sessions 1: %v\n%s", err, out)
	}
	if out, _, err := run("users", "list", "--limit", "1", "--json", st); err != nil || strings.Count(out, `"id"`) != 1 {
		t.Errorf("--limit 1: %v\n%s", err, out)
	}
}

// TestCLIDisabledPendingShowsDisabled: a pending user disabled (their
// request refused) is listed and shown as disabled, not pending.
func TestCLIDisabledPendingShowsDisabled(t *testing.T) {
	path, pending, _ := stoppedStore(t)
	st := "--store=" + path
	if _, _, err := run("users", "disable", pending.ID, st); err != nil {
		t.Fatal(err)
	}
	out, _, err := run("users", "show", pending.ID, st)
	if line := lineOf(out, "Status:"); err != nil || !strings.Contains(line, "disabled") {
		t.Errorf("show of a disabled pending user: %q (%v)", line, err)
	}
	out, _, err = run("users", "list", st)
	if line := lineOf(out, pending.ID); err != nil || !strings.Contains(line, "disabled") {
		t.Errorf("list of a disabled pending user: %q (%v)", line, err)
	}
	help, _, _ := run("users", "disable", "--help")
	if !strings.Contains(help, "a later enable approves them") {
		t.Errorf("disable --help does not say what becomes of a pending user:\n%s", help)
	}
}

func lineOf(s, word string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			return l
		}
	}
	return ""
}

// TestCLIAuditJSONLines: audit --json is JSON Lines, said in its help: one
// event per line, so no events print no line (users list --json, which
// has an end, prints an array).
func TestCLIAuditJSONLines(t *testing.T) {
	path, _, active := stoppedStore(t)
	st := "--store=" + path
	help, _, _ := run("audit", "--help")
	if !strings.Contains(help, "JSON Lines") || !strings.Contains(help, "no events print no line") {
		t.Errorf("audit --help does not describe --json:\n%s", help)
	}
	if out, _, err := run("audit", "--type", store.EventUserDeleted, "--json", st); err != nil || out != "" {
		t.Errorf("no events: %q, %v", out, err)
	}
	if _, _, err := run("users", "disable", active.ID, st); err != nil {
		t.Fatal(err)
	}
	out, _, err := run("audit", "--json", st)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	for _, l := range lines {
		var e store.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

// TestCLIDeleteHelpSaysOfflineTombstones: the help of users delete says
// that offline, not knowing which IdPs SCIM manages, it leaves tombstones
// at every IdP, and the audit detail it writes so.
func TestCLIDeleteHelpSaysOfflineTombstones(t *testing.T) {
	help, _, _ := run("users", "delete", "--help")
	if !strings.Contains(help, "tombstones at every identity provider") || !strings.Contains(help, "scim_managed=unknown") {
		t.Errorf("users delete --help:\n%s", help)
	}
	path, _, active := stoppedStore(t)
	st := "--store=" + path
	if _, _, err := run("users", "delete", active.ID, st); err != nil {
		t.Fatal(err)
	}
	out, _, err := run("audit", "--type", store.EventUserDeleted, "--json", st)
	var e store.Event
	if err != nil || json.Unmarshal([]byte(out), &e) != nil || e.Detail["scim_managed"] != "unknown" || e.Detail["tombstones"] != "1" {
		t.Errorf("offline delete's event: %q, %v", out, err)
	}
}

// TestCLIOfflineBackupAudited: an offline backup of a PostgreSQL store
// (which running instances may share) is audited as the admin API's are;
// one of a bbolt file, opened read-only, is taken without an event.
func TestCLIOfflineBackupAudited(t *testing.T) {
	dsn, db := openPG(t)
	t.Setenv("SSO_TEST_BACKUP_DSN", dsn)
	if _, _, err := run("backup", filepath.Join(t.TempDir(), "b.jsonl.gz"), "--store", "postgres:{env.SSO_TEST_BACKUP_DSN}"); err != nil {
		t.Fatal(err)
	}
	page, err := (&account.Service{Store: db}).Audit(context.Background(), store.AuditQuery{Type: account.EventStoreBackedUp})
	if err != nil || len(page.Events) != 1 || page.Events[0].Detail["via"] != "offline" || page.Events[0].Reason != account.ByAdmin {
		t.Errorf("offline PostgreSQL backup events: %+v, %v", page, err)
	}
	path, _, _ := stoppedStore(t)
	if _, errOut, err := run("backup", filepath.Join(t.TempDir(), "b.jsonl.gz"), "--store="+path); err != nil || strings.Contains(errOut, "warning") {
		t.Errorf("offline bbolt backup: %v\n%s", err, errOut)
	}
}

// TestCLIJSONMigrateAndSAMLKey: migrate and saml-key print JSON with
// --json, in the snake_case names every other command uses (migrate
// printed portable.Report's Go names, saml-key its text).
func TestCLIJSONMigrateAndSAMLKey(t *testing.T) {
	path, _, _ := stoppedStore(t)
	kp, err := saml.GenerateKeyPair("test")
	if err != nil {
		t.Fatal(err)
	}
	pemData, err := saml.EncodeKeyPairPEM(kp)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret(saml.SPKeySecretName("test"), pemData)
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	stdout, _, err := run("migrate", "--from=bolt:"+path, "--to=bolt:"+filepath.Join(t.TempDir(), "copy.db"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]map[string]int
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("migrate --json: %v\n%s", err, stdout)
	}
	if rep["copied"]["users"] != 2 || rep["source"]["users"] != 2 || rep["target"]["sessions"] != 2 || len(rep) != 3 {
		t.Errorf("migrate --json = %s, want copied, source and target in snake_case", stdout)
	}
	if _, ok := rep["target"]["audit_events"]; !ok {
		t.Errorf("migrate --json target without audit_events: %s", stdout)
	}

	file := filepath.Join(t.TempDir(), "sp.pem")
	stdout, _, err = run("saml-key", "test", "--out", file, "--store", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var key struct{ IdP, File string }
	if err := json.Unmarshal([]byte(stdout), &key); err != nil || key.IdP != "test" || key.File != file {
		t.Fatalf("saml-key --json = %s (%v), want idp and file", stdout, err)
	}
	var keyJSON map[string]string
	_ = json.Unmarshal([]byte(stdout), &keyJSON)
	if keyJSON["sp_cert"] != "sp_cert "+file+" "+file {
		t.Errorf("saml-key --json sp_cert = %q", keyJSON["sp_cert"])
	}
}
