package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// section is the part of the doc at path from the first line holding
// start to the next "\n## " heading (or to until, when given).
func section(t *testing.T, path, start, until string) string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i := strings.Index(text, start)
	if i < 0 {
		t.Fatalf("%s has no %q", path, start)
	}
	text = text[i:]
	if until == "" {
		until = "\n## "
	}
	if j := strings.Index(text[1:], until); j >= 0 {
		text = text[:j+1]
	}
	return text
}

// TestDocsListEveryEventType: operations.md's and troubleshooting.md's
// lists of event types name every type --type accepts (troubleshooting.md
// lacked store.keys_rotated and user.tombstone_lifted), troubleshooting.md
// possibly as `user.created|updated`.
func TestDocsListEveryEventType(t *testing.T) {
	ops := section(t, "../docs/operations.md", "An unknown `type` is refused", "\n\n")
	trail := section(t, "../docs/troubleshooting.md", "- **The audit trail.**", "With Caddy stopped")
	for _, typ := range account.EventTypes {
		if !strings.Contains(ops, "`"+typ+"`") {
			t.Errorf("operations.md's list of event types lacks %s", typ)
		}
		_, rest, _ := strings.Cut(typ, ".")
		if !strings.Contains(trail, "`"+typ+"`") && !strings.Contains(trail, "`"+typ+"|") &&
			!strings.Contains(trail, "|"+rest+"|") && !strings.Contains(trail, "|"+rest+"`") {
			t.Errorf("troubleshooting.md's list of event types lacks %s", typ)
		}
	}
}

// TestDocsListEveryAuditReason: each (reason, type) of the events the
// offline CLI writes is a row of troubleshooting.md's "Audit reasons"
// table; an empty reason is the row "(none)".
func TestDocsListEveryAuditReason(t *testing.T) {
	documented := map[[2]string]bool{}
	for line := range strings.Lines(section(t, "../docs/troubleshooting.md", "## Audit reasons", "")) {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		reason := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if reason == "(none)" {
			reason = ""
		}
		for _, typ := range strings.Split(cells[2], ",") {
			documented[[2]string{reason, strings.Trim(strings.TrimSpace(typ), "`")}] = true
		}
	}
	path, _, user := stoppedStore(t)
	file := filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", file, "--store", path)
	for _, args := range [][]string{
		{"keys", "rotate"}, {"users", "disable", user.ID}, {"users", "enable", user.ID}, {"sessions", "revoke", user.ID},
		{"users", "delete", user.ID}, {"tombstones", "lift", user.ID},
	} {
		mustCLI(t, append(args, "--store", path)...)
	}
	events := strings.TrimSpace(mustCLI(t, "audit", "--json", "--store", path))
	mustCLI(t, "restore", file, "--store", path)
	events += "\n" + strings.TrimSpace(mustCLI(t, "audit", "--json", "--store", path))
	for line := range strings.Lines(events) {
		var e store.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit --json: %v: %s", err, line)
		}
		if !documented[[2]string{e.Reason, e.Type}] {
			t.Errorf("%s with reason %q (detail %v) is not in troubleshooting.md's Audit reasons table", e.Type, e.Reason, e.Detail)
		}
	}
}
