package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

// TestLastingFailures: which failures to read the trail end `audit
// --follow` (a retry cannot mend them) and which it waits out. A 429 or
// 408 from the admin API, or a PostgreSQL restart, must not end a follower
// that has run for days; a refused authorisation or a missing database
// must not be retried for ever in silence.
func TestLastingFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"400", &apiStatusError{status: 400}, true},
		{"401", &apiStatusError{status: 401}, true},
		{"403", &apiStatusError{status: 403}, true},
		{"404", &apiStatusError{status: 404}, true},
		{"408", &apiStatusError{status: 408}, false},
		{"425", &apiStatusError{status: 425}, false},
		{"429", &apiStatusError{status: 429}, false},
		{"499", &apiStatusError{status: 499}, true},
		{"500", &apiStatusError{status: 500}, false},
		{"503", &apiStatusError{status: 503}, false},
		{"wrapped 403", fmt.Errorf("x: %w", &apiStatusError{status: 403}), true},
		{"not the admin API, 401", &notAdminError{answer: &apiStatusError{status: 401}}, true},
		{"bad query", fmt.Errorf("x: %w", account.ErrBadQuery), true},
		{"unfinished import", store.ErrUnfinishedImport, true},
		{"not a store", bolt.ErrNotStore, true},
		{"damaged", bolt.ErrDamaged, true},
		{"invalid value", fmt.Errorf("x: %w", store.ErrInvalidValue), true},
		{"value too long", fmt.Errorf("x: %w", store.ErrValueTooLong), true},
		{"bolt store of a newer schema", fmt.Errorf("x: %w", bolt.ErrNewerSchema), true},
		{"bolt store of an older schema", fmt.Errorf("x: %w", bolt.ErrOldSchema), true},
		{"postgres store of a newer schema", fmt.Errorf("x: %w", postgres.ErrNewerSchema), true},
		{"pg password refused", &pgconn.PgError{Code: "28P01"}, true},
		{"pg no such database", &pgconn.PgError{Code: "3D000"}, true},
		{"pg no such table", &pgconn.PgError{Code: "42P01"}, true},
		{"pg no privilege", &pgconn.PgError{Code: "42501"}, true},
		{"pg shutting down", &pgconn.PgError{Code: "57P01"}, false},
		{"pg connection failure", &pgconn.PgError{Code: "08006"}, false},
		{"pg other 3D", &pgconn.PgError{Code: "3D001"}, false},
		{"unreachable", errors.New("dial tcp: connection refused"), false},
		{"timeout", &adminTimeout{}, false},
	} {
		if got := lasting(tc.err); got != tc.want {
			t.Errorf("%s: lasting = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestFollowRetryBackoff: while the trail cannot be read, the pause
// doubles from --interval up to followRetries times it, and the operator
// reads one warning when the failures start (made safe for a terminal) and
// one line when they end, not one per attempt.
func TestFollowRetryBackoff(t *testing.T) {
	var w bytes.Buffer
	r := followRetry{w: &w, interval: 10 * time.Millisecond}
	r.resumed(7) // no failures: nothing to say
	if w.Len() != 0 {
		t.Fatalf("resumed without a failure printed %q", w.String())
	}
	var pauses []time.Duration
	for range 6 {
		pauses = append(pauses, r.failed(errors.New("db down\x1b[2J")))
	}
	want := []time.Duration{10, 20, 40, 50, 50, 50}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if fmt.Sprint(pauses) != fmt.Sprint(want) {
		t.Errorf("pauses %v, want %v", pauses, want)
	}
	out := w.String()
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "warning: cannot read the audit trail") || strings.Contains(out, "\x1b") {
		t.Errorf("six failures printed %q, want one warning line without the escape", out)
	}
	w.Reset()
	r.resumed(42)
	if out := w.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, "after 6 failed attempts") || !strings.Contains(out, "after event 42") {
		t.Errorf("resumed printed %q", out)
	}
	w.Reset()
	r.resumed(43)
	if w.Len() != 0 {
		t.Errorf("a second read printed %q", w.String())
	}
	// A new run of failures starts from --interval again.
	if p := r.failed(errors.New("again")); p != 10*time.Millisecond || !strings.HasPrefix(w.String(), "warning:") {
		t.Errorf("a new failure: pause %v, printed %q", p, w.String())
	}
}

// TestAuditIntervalMustBePositive: --interval 0 would poll in a busy loop;
// it is refused before anything is read.
func TestAuditIntervalMustBePositive(t *testing.T) {
	for _, iv := range []string{"0s", "-1s"} {
		out, err := runCLI("audit", "--follow", "--interval="+iv, "--store=bolt:"+filepath.Join(t.TempDir(), "none.db"))
		if err == nil || !strings.Contains(err.Error(), "--interval") || !strings.Contains(err.Error(), "positive duration") {
			t.Errorf("--interval=%s: %v\n%s", iv, err, out)
		}
	}
}

// TestStatusErrorMessage: what the admin API's refusal reads as: its JSON
// message, else the first line of what it sent, cut at 200 bytes, or that
// it gave none; always safe for a terminal, with the status in words.
func TestStatusErrorMessage(t *testing.T) {
	long := strings.Repeat("x", 250)
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{"json", `{"error": "user \"a\" not found"}`, `user "a" not found (HTTP 404 Not Found)`},
		{"json with an escape", `{"error": "bad \u001b[2J"}`, `bad \x1b[2J (HTTP 404 Not Found)`},
		{"empty", "  \n", "the admin endpoint gave no reason (HTTP 404 Not Found)"},
		{"json without a message", `{"error": ""}`, `{"error": ""} (HTTP 404 Not Found)`},
		{"text, first line", "no route\nsecond line", "no route (HTTP 404 Not Found)"},
		{"long text", long + "\nmore", strings.Repeat("x", 200) + "… (HTTP 404 Not Found)"},
		{"text with an escape", "oops\x1b]0;title\x07", `oops\x1b]0;title\x07 (HTTP 404 Not Found)`},
	} {
		if got := statusError(404, []byte(tc.body)).Error(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDescribeRunningStore: how restore names the store of the Caddy it
// refuses to restore under, and the --store argument it suggests: a
// placeholder DSN as written, a literal one never (it may hold a password).
func TestDescribeRunningStore(t *testing.T) {
	for _, tc := range []struct {
		name      string
		s         *caddymodule.StoreConfig
		desc, arg string
	}{
		{"placeholder", &caddymodule.StoreConfig{Backend: "postgres", DSN: "{env.DB}"},
			"the PostgreSQL database of {env.DB} in its environment", "'postgres:{env.DB}'"},
		{"literal dsn", &caddymodule.StoreConfig{Backend: "postgres", DSN: "postgres://u:secret@db/sso"},
			"", "'postgres:{env.SSO_DATABASE_URL}' (its connection string in that variable)"},
		{"half a placeholder", &caddymodule.StoreConfig{Backend: "postgres", DSN: "{env.DB}x"},
			"", "'postgres:{env.SSO_DATABASE_URL}' (its connection string in that variable)"},
		{"literal dsn ending in a brace", &caddymodule.StoreConfig{Backend: "postgres", DSN: "postgres://u:secret@db/sso?x={y}"},
			"", "'postgres:{env.SSO_DATABASE_URL}' (its connection string in that variable)"},
		{"bolt", &caddymodule.StoreConfig{Path: "/var/lib/sso.db"}, "the store bolt:/var/lib/sso.db", "'bolt:/var/lib/sso.db'"},
		{"default", nil, "its default store (sso/sso.db in its data directory)", "<data directory>/sso/sso.db"},
	} {
		got := describeStore(tc.s)
		if (tc.desc != "" && got.describe != tc.desc) || got.arg != tc.arg || strings.Contains(got.describe+got.arg, "secret") {
			t.Errorf("%s: %+v, want %q, %q", tc.name, got, tc.desc, tc.arg)
		}
	}
}

// TestCheckBackupTargetNames: each target a backup refuses says what is
// there, and a new name or a regular file is accepted.
func TestCheckBackupTargetNames(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "old.gz")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "new.gz"), ""},
		{file, ""},
		{"-", `refusing to write the backup to "-"`},
		{dir, "it is a directory"},
		{link, "it is a symbolic link to " + file},
		{fifo, "it is a named pipe"},
		{"/dev/null", "it is a device"},
	} {
		err := checkBackupTarget(tc.path)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
}

// TestReplacedEventDetail: the store.restored/migrated event says via
// offline, and the highest number the replaced store handed out only when
// it is known and there was one; a bbolt file's modification time is not
// the backup's own time.
func TestReplacedEventDetail(t *testing.T) {
	for _, tc := range []struct {
		name string
		old  oldStore
		want string
	}{
		{"numbered", oldStore{auditSeq: 12}, "12"},
		{"empty trail", oldStore{}, ""},
		{"unreadable", oldStore{auditSeq: 12, unreadable: true}, ""},
	} {
		d := map[string]string{}
		_ = replacedEvent(account.EventStoreRestored, d, tc.old)
		if d["via"] != account.ViaOffline || d["last_seq_before"] != tc.want {
			t.Errorf("%s: detail %v, want via=offline and last_seq_before %q", tc.name, d, tc.want)
		}
		if _, ok := d["last_seq_before"]; ok != (tc.want != "") {
			t.Errorf("%s: detail %v", tc.name, d)
		}
	}
	taken := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if d := (restored{taken: taken}).detail(); d["backup_taken"] != "2026-01-02T03:04:05Z" {
		t.Errorf("a backup's time: %v", d)
	}
	if d := (restored{taken: taken, fileTime: true}).detail(); len(d) != 0 {
		t.Errorf("a bbolt file's modification time is in the detail: %v", d)
	}
	if d := (restored{}).detail(); len(d) != 0 {
		t.Errorf("no time: %v", d)
	}
}

// TestOlderLeftoverNames: only the names older versions built a store
// under are named: .<base>.restore with up to 10 digits (os.CreateTemp),
// and .<base>.restore or .migrate; an operator's own files are not.
func TestOlderLeftoverNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".sso.db.restore", ".sso.db.restore1234567890", ".sso.db.migrate",
		".sso.db.restore12345678901", ".sso.db.restore-copy", ".sso.db.migrate2", ".other.db.restore", "sso.db"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var w bytes.Buffer
	warnOlderLeftovers(&w, filepath.Join(dir, "sso.db"))
	out := w.String()
	if !strings.Contains(out, "holds .sso.db.migrate, .sso.db.restore, .sso.db.restore1234567890: ") {
		t.Errorf("warning %q, want the three older names and no other", out)
	}
	w.Reset()
	warnOlderLeftovers(&w, filepath.Join(dir, "other.db")) // .other.db.restore only
	if !strings.Contains(w.String(), "holds .other.db.restore: ") {
		t.Errorf("warning %q", w.String())
	}
	w.Reset()
	warnOlderLeftovers(&w, filepath.Join(dir, "none.db"))
	if w.Len() != 0 {
		t.Errorf("nothing to name, but %q", w.String())
	}
}

// TestPrintStoreCheck: an inconsistent store lists each problem, made safe
// for a terminal (problems quote stored keys), and how many more there are.
func TestPrintStoreCheck(t *testing.T) {
	var w bytes.Buffer
	sc := adminapi.NewStoreCheck("/s.db", 3, store.Counts{Users: 2}, []string{"user \x1b[2Jx has no index"}, 4)
	if err := printStoreCheck(&w, sc); err != nil {
		t.Fatal(err)
	}
	out := w.String()
	if strings.Contains(out, "\x1b") || !strings.Contains(out, `✗ user \x1b[2Jx has no index`) || !strings.Contains(out, "✗ … and 4 more") {
		t.Errorf("printed %q", out)
	}
	w.Reset()
	_ = printStoreCheck(&w, adminapi.NewStoreCheck("/s.db", 3, store.Counts{}, nil, 0))
	if out := w.String(); !strings.Contains(out, "✓") || strings.Contains(out, "✗") {
		t.Errorf("a sound store printed %q", out)
	}
}

// TestKeysReportLines: what keys finish says when there was nothing to
// finish, and not otherwise.
func TestKeysReportLines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rep     keys.Report
		nothing bool
	}{
		{"nothing", keys.Report{}, true},
		{"rotated", keys.Report{Rotated: []keys.Kind{"flow"}}, false},
		{"tokens key found", keys.Report{TokensPreviousFound: true, Tokens: &session.ResealStats{}}, false},
		{"flow key deleted", keys.Report{FlowPreviousDeleted: true}, false},
	} {
		var w bytes.Buffer
		printKeysReport(&w, &tc.rep)
		if got := strings.Contains(w.String(), "nothing to finish"); got != tc.nothing {
			t.Errorf("%s: printed %q", tc.name, w.String())
		}
	}
}

// TestResealProgressOnce: the re-seal's progress is printed at most every
// few seconds, and its end (which a pass ending on a full batch reports
// twice) once.
func TestResealProgressOnce(t *testing.T) {
	var w bytes.Buffer
	p := resealProgress(&w)
	p(session.ResealProgress{Pass: 1, Scanned: 10, Sessions: 100})
	p(session.ResealProgress{Pass: 1, Scanned: 20, Sessions: 100}) // within 2s: not printed
	end := session.ResealProgress{Pass: 1, Scanned: 100, Sessions: 100, Resealed: 100}
	p(end)
	p(end)
	if got := strings.Count(w.String(), "\n"); got != 2 {
		t.Errorf("printed %d lines, want 2 (the first and the end once):\n%s", got, w.String())
	}
}

// TestAuditTableEscapesType: the audit table neutralises terminal escapes
// in an event's type, as in its other columns: a restored backup or a
// damaged store can hold any text there.
func TestAuditTableEscapesType(t *testing.T) {
	var buf bytes.Buffer
	table := &auditTable{w: &buf}
	if err := table.print([]store.Event{{Seq: 1, Time: time.Unix(0, 0), Type: "user.created\x1b[2J\x1b]0;owned\a"}}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(buf.String(), "\x1b\a") {
		t.Errorf("the audit table printed a terminal escape from an event's type: %q", buf.String())
	}
}

// TestOperatorLineEdges: lines an operator reads on edges no command test
// reaches. A time never set reads "-", not the year 1; sessions whose
// tokens no key opens are counted, since they are left as they were; an
// address naming a range of ports is refused as the admin address; a JSON
// answer from something that is not the sso admin API is quoted at most
// 200 bytes.
func TestOperatorLineEdges(t *testing.T) {
	if got := localTime(time.Time{}); got != "-" {
		t.Errorf("localTime of a zero time = %q, want -", got)
	}
	var w bytes.Buffer
	printKeysReport(&w, &keys.Report{Rotated: []keys.Kind{"tokens"}, Tokens: &session.ResealStats{Unopenable: 3}})
	if !strings.Contains(w.String(), "3 session(s) hold tokens neither key opens") {
		t.Errorf("keys report without the unopenable sessions:\n%s", w.String())
	}
	if _, err := newAdminEndpoint("127.0.0.1:2019-2021", time.Second); err == nil || !strings.Contains(err.Error(), "a range of ports") {
		t.Errorf("an admin address with a range of ports: %v", err)
	}
	long := &notAdminError{addr: "127.0.0.1:2019", json: true, answer: &apiStatusError{status: 403, msg: strings.Repeat("x", 1000)}}
	if msg := long.Error(); strings.Count(msg, "x") != 200 || !strings.Contains(msg, "x…") {
		t.Errorf("a long JSON answer is quoted with %d bytes of it: %s", strings.Count(msg, "x"), msg)
	}
}
