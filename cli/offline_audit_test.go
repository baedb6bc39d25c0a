package cli_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// lastEvent is the last event of the store at target, as audit --json
// prints it (--type, when typ is set, filters: so it is accepted); none
// gives the zero Event.
func lastEvent(t *testing.T, target, typ string) store.Event {
	t.Helper()
	args := []string{"audit", "--json", "--store", target}
	if typ != "" {
		args = append(args, "--type", typ)
	}
	out := strings.TrimSpace(mustCLI(t, args...))
	var e store.Event
	if out == "" {
		return e
	}
	if err := json.Unmarshal([]byte(out[strings.LastIndex(out, "\n")+1:]), &e); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	return e
}

// TestReplacedStoreIsInTheTrail: restore and migrate replace the whole
// audit trail with the source's. They used to write nothing, so the trail
// read as if the events since the backup (a leaver's deactivation) had
// never happened. Now each appends one event after the import: its type,
// reason admin, via=offline, when the backup was taken (if it says), the
// source's kind for a migration, and the highest number the replaced
// bbolt file had handed out.
func TestReplacedStoreIsInTheTrail(t *testing.T) {
	path, _, user := stoppedStore(t)
	file := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", file, "--store", path)
	taken := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	backupTakenAt(t, file, taken)
	older := copyFile(t, path)
	mustCLI(t, "users", "disable", user.ID, "--store", path) // a leaver, after the backup
	dsn, _ := openPG(t)

	steps := []struct {
		name, target, typ string
		args              []string
		want              map[string]string // detail; last_seq_before: the store's before, when set to "?"
	}{
		{"restore over bbolt", path, account.EventStoreRestored, []string{"restore", file, "--store", path},
			map[string]string{"via": "offline", "backup_taken": "2026-03-01T12:00:00Z", "last_seq_before": "?"}},
		{"restore into PostgreSQL", "postgres:" + dsn, account.EventStoreRestored, []string{"restore", file, "--store", "postgres:" + dsn},
			map[string]string{"via": "offline", "backup_taken": "2026-03-01T12:00:00Z"}},
		{"migrate over bbolt", path, account.EventStoreMigrated, []string{"migrate", "--force", "--from", "bolt:" + older, "--to", "bolt:" + path},
			map[string]string{"via": "offline", "from": "bolt", "last_seq_before": "?"}},
		{"migrate into a new file", filepath.Join(t.TempDir(), "new.db"), account.EventStoreMigrated, nil,
			map[string]string{"via": "offline", "from": "bolt"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.args == nil {
				st.args = []string{"migrate", "--from", "bolt:" + older, "--to", "bolt:" + st.target}
			}
			if st.want["last_seq_before"] == "?" {
				st.want["last_seq_before"] = strconv.FormatUint(lastEvent(t, st.target, "").Seq, 10)
			}
			mustCLI(t, st.args...)
			e := lastEvent(t, st.target, "")
			if e.Type != st.typ || e.Reason != account.ByAdmin || e.UserID != "" {
				t.Errorf("last event after %s: %+v, want %s with reason %s", st.name, e, st.typ, account.ByAdmin)
			}
			if !maps.Equal(e.Detail, st.want) {
				t.Errorf("%s detail = %v, want %v", st.typ, e.Detail, st.want)
			}
			if got := lastEvent(t, st.target, st.typ); got.Seq != e.Seq {
				t.Errorf("audit --type %s: %+v", st.typ, got)
			}
		})
	}
}

// TestOfflineWritesSayVia: the offline CLI's writes of users were
// indistinguishable in the trail from the admin API's (reason admin, no
// via), though its backups and key rotations said via=offline. Now every
// event they write carries it too.
func TestOfflineWritesSayVia(t *testing.T) {
	path, _, user := stoppedStore(t)
	for _, args := range [][]string{
		{"users", "disable", user.ID}, {"users", "enable", user.ID}, {"sessions", "revoke", user.ID},
		{"users", "delete", user.ID}, {"tombstones", "lift", user.ID},
	} {
		mustCLI(t, append(args, "--store", path)...)
	}
	var types []string
	for line := range strings.Lines(strings.TrimSpace(mustCLI(t, "audit", "--json", "--store", path))) {
		var e store.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit --json: %v: %s", err, line)
		}
		types = append(types, e.Type)
		if e.Detail["via"] != "offline" {
			t.Errorf("%s written offline: detail %v, want via=offline", e.Type, e.Detail)
		}
	}
	if len(types) < 5 {
		t.Errorf("events written: %v", types)
	}
}

// TestOfflineReadsLeaveBoltStoreAsIs: the commands that only read a stopped
// instance's bbolt store (backup, users list and show, tombstones list,
// audit) open it read-only and leave the file exactly as it was: a backup
// taken before an upgrade, say, must not change what it copies, and is
// not audited into the file (a PostgreSQL store's is).
func TestOfflineReadsLeaveBoltStoreAsIs(t *testing.T) {
	path, _, user := stoppedStore(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"backup", filepath.Join(t.TempDir(), "sso.jsonl.gz")},
		{"users", "list"},
		{"users", "show", user.ID},
		{"tombstones", "list"},
		{"audit"},
	} {
		mustCLI(t, append(args, "--store", path)...)
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("%s --store changed the store file", strings.Join(args, " "))
			before = after
		}
	}
	if e := lastEvent(t, path, account.EventStoreBackedUp); e.Type != "" {
		t.Errorf("an offline backup of a bbolt store wrote into it: %+v", e)
	}
}
