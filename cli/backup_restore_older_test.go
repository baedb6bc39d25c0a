package cli_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

// auditSeqs are the numbers of the events `audit --json` printed.
func auditSeqs(t *testing.T, out string) []uint64 {
	t.Helper()
	var seqs []uint64
	for line := range strings.Lines(strings.TrimSpace(out)) {
		var e store.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit --json: %v\n%s", err, out)
		}
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

// lastAuditSeq is the number of the last event in the store at path.
func lastAuditSeq(t *testing.T, path string) uint64 {
	t.Helper()
	seqs := auditSeqs(t, mustCLI(t, "audit", "--json", "--store", path))
	if len(seqs) == 0 {
		t.Fatalf("no audit events in %s", path)
	}
	return seqs[len(seqs)-1]
}

// disableEnable writes 2n audit events on the user's account in the store
// at path, offline.
func disableEnable(t *testing.T, path, userID string, n int) {
	t.Helper()
	for range n {
		mustCLI(t, "users", "disable", userID, "--store", path)
		mustCLI(t, "users", "enable", userID, "--store", path)
	}
}

// numberedAfter fails unless the store at path holds events after seen,
// all numbered after it: what a follower that last saw seen reads next.
func numberedAfter(t *testing.T, path string, seen uint64) {
	t.Helper()
	got := auditSeqs(t, mustCLI(t, "audit", "--json", "--after", strconv.FormatUint(seen, 10), "--store", path))
	if len(got) == 0 {
		t.Fatalf("a follower that saw event %d reads nothing after it: the new event was numbered %d, a number handed out before",
			seen, lastAuditSeq(t, path))
	}
}

// TestRestoreKeepsAuditNumbering: an older backup restored onto the bbolt
// file it came from. Events written after the restore used to be numbered
// from the backup's last one, numbers the file had handed out already: a
// follower resuming after the last event it saw (audit --follow, --after)
// skipped them until the numbers caught up. Now they are numbered after
// every number of the file replaced; and a migration that replaces a bbolt
// file (migrate --force) does the same.
func TestRestoreKeepsAuditNumbering(t *testing.T) {
	path, _, user := stoppedStore(t)
	disableEnable(t, path, user.ID, 1)
	file := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", file, "--store", path)
	older := copyFile(t, path) // the store as the backup holds it
	disableEnable(t, path, user.ID, 5)
	seen := lastAuditSeq(t, path)

	out := mustCLI(t, "restore", file, "--store", path)
	if strings.Contains(out, "--since") {
		t.Errorf("the file replaced was readable, yet the restore says to restart followers: %q", out)
	}
	mustCLI(t, "users", "disable", user.ID, "--store", path) // a leaver, after the restore
	numberedAfter(t, path, seen)

	seen = lastAuditSeq(t, path)
	mustCLI(t, "migrate", "--force", "--from", "bolt:"+older, "--to", "bolt:"+path)
	mustCLI(t, "users", "disable", user.ID, "--store", path) // active again in the older copy
	numberedAfter(t, path, seen)
}

// TestRestoreOverUnreadableStore: the file restored over cannot be read
// (damaged: the usual reason to restore), so the audit numbers it handed
// out are unknown; the restore says to restart followers from a time.
func TestRestoreOverUnreadableStore(t *testing.T) {
	path, _, user := stoppedStore(t)
	disableEnable(t, path, user.ID, 1)
	file := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", file, "--store", path)
	if err := os.WriteFile(path, bytes.Repeat([]byte("garbled "), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	// The time to follow from is the restore's: read around it, not after
	// it, or a restore just before midnight UTC names the day before.
	before := time.Now().Truncate(time.Second)
	out := mustCLI(t, "restore", file, "--store", path)
	after := time.Now()
	for _, want := range []string{"could not be read", "restart audit followers"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore over a damaged file does not say %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`--since (\S+)`).FindStringSubmatch(out); m == nil {
		t.Errorf("restore over a damaged file does not say --since:\n%s", out)
	} else if since, err := time.Parse(time.RFC3339, m[1]); err != nil || since.Before(before) || since.After(after) {
		t.Errorf("restore says --since %s (%v), want the restore's time, between %v and %v", m[1], err, before.UTC(), after.UTC())
	}
	mustCLI(t, "users", "list", "--store", path) // and the store is the backup's

	// migrate --force over a damaged bbolt file says the same.
	source := copyFile(t, path)
	if err := os.WriteFile(path, bytes.Repeat([]byte("garbled "), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, "migrate", "--force", "--from", "bolt:"+source, "--to", "bolt:"+path)
	if !strings.Contains(out, "restart audit followers") || !strings.Contains(out, "--since ") {
		t.Errorf("migrate --force over a damaged file does not say to restart followers:\n%s", out)
	}
}

// TestRestoreOverUnfinishedStore: the file restored over holds the mark
// of a migration into it that did not finish (store.UnfinishedImport),
// which every other open refuses; its audit numbers are still read, and
// the new store numbers after them.
func TestRestoreOverUnfinishedStore(t *testing.T) {
	path, _, user := stoppedStore(t)
	file := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", file, "--store", path)
	disableEnable(t, path, user.ID, 3)
	seen := lastAuditSeq(t, path)
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.LoadOrStoreSecret(store.UnfinishedImport, []byte("migration started 2026-01-02T03:04:05Z"))
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "restore", file, "--store", path); strings.Contains(out, "--since") {
		t.Errorf("the marked file was readable, yet the restore says to restart followers: %q", out)
	}
	mustCLI(t, "users", "disable", user.ID, "--store", path)
	numberedAfter(t, path, seen)
}

// backupTakenAt rewrites the backup at file as if taken at when: its
// header's Created.
func backupTakenAt(t *testing.T, file string, when time.Time) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(gz)
	first, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Header portable.Header `json:"header"`
	}
	if err := json.Unmarshal(first, &head); err != nil {
		t.Fatal(err)
	}
	head.Header.Created = when
	first, err = json.Marshal(head)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(append(append(first, '\n'), rest...))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreSaysWhenBackupWasTaken: restoring a backup undoes every change
// made since it was taken (leavers active again, key rotations and SCIM
// changes gone), and the restore used to say only how many records it
// wrote. Now it says when the backup was taken, how long ago, and that
// everything since is undone, into bbolt and PostgreSQL alike, from a
// bbolt file too (and --json has the time).
func TestRestoreSaysWhenBackupWasTaken(t *testing.T) {
	path, _, _ := stoppedStore(t)
	file := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", file, "--store", path)
	taken := time.Now().Add(-(27*time.Hour + 5*time.Minute)).UTC().Truncate(time.Second)
	backupTakenAt(t, file, taken)
	dsn, _ := openPG(t)
	want := []string{
		"backup taken " + taken.Format("2006-01-02 15:04:05") + " UTC (1 day 3h ago)",
		"every change since the backup (" + taken.Format("2006-01-02 15:04:05") + " UTC) is undone",
		`"Restoring an older backup" in docs/operations.md`,
	}
	for _, target := range []string{"bolt:" + path, "postgres:" + dsn} {
		out := mustCLI(t, "restore", file, "--store", target)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("restore into %s does not say %q:\n%s", strings.SplitN(target, ":", 2)[0], w, out)
			}
		}
	}
	// A bbolt file (what older versions wrote as a backup) has no header:
	// its modification time stands in.
	if err := os.Chtimes(path, taken, taken); err != nil {
		t.Fatal(err)
	}
	w := "backup file last modified " + taken.Format("2006-01-02 15:04:05") + " UTC (1 day 3h ago)"
	if out := mustCLI(t, "restore", path, "--store", filepath.Join(t.TempDir(), "from-bolt.db")); !strings.Contains(out, w) {
		t.Errorf("restore of a bbolt file does not say %q:\n%s", w, out)
	}
	stdout, _, err := run("restore", file, "--json", "--store", filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Taken time.Time `json:"backup_taken"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || !res.Taken.Equal(taken) {
		t.Errorf("restore --json: backup_taken %v (%v), want %v:\n%s", res.Taken, err, taken, stdout)
	}
}
