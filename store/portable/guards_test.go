package portable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestProgressAtEachTenThousand: Export tells Progress of every kind it
// counts at each multiple of progressEvery, and Import once per multiple
// crossed (at the batch that crosses it), not at every batch after the
// first: an operator restoring a large store sees "single-use IDs: 10000",
// "…: 20000", one line each.
func TestProgressAtEachTenThousand(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 0) // keys, groups, a tombstone, 5 single-use IDs
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	const extra = 2*progressEvery + 100
	err := src.Update(ctx, func(tx store.Tx) error {
		for i := range extra {
			if _, err := tx.Consume("oidc", fmt.Sprint("state-", i), t0.Add(time.Hour)); err != nil {
				return err
			}
			if err := tx.Audit(store.Event{Time: t0, Type: store.EventUserCreated, IdP: "okta"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var exported []string
	var buf bytes.Buffer
	if _, err := Export(ctx, src, &buf, ExportOptions{Progress: func(kind string, n int) {
		exported = append(exported, fmt.Sprint(kind, ": ", n))
	}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"single-use IDs: 10000", "single-use IDs: 20000", "audit events: 10000", "audit events: 20000"}
	if !slices.Equal(exported, want) {
		t.Errorf("export progress %q, want %q", exported, want)
	}

	const batch = 500
	heard := map[string][]int{}
	if _, err := Import(ctx, backendtest.OpenBolt(t), bytes.NewReader(buf.Bytes()), ImportOptions{BatchSize: batch, Progress: func(kind string, n int) {
		heard[kind] = append(heard[kind], n)
	}}); err != nil {
		t.Fatal(err)
	}
	if len(heard) != 2 {
		t.Errorf("import progress heard of %v, want single-use IDs and audit events only", heard)
	}
	for _, kind := range []string{"single-use IDs", "audit events"} {
		ns := heard[kind]
		if len(ns) != 2 || ns[0] < progressEvery || ns[0] >= progressEvery+batch || ns[1] < 2*progressEvery || ns[1] >= 2*progressEvery+batch {
			t.Errorf("import progress of %s: %v, want once past 10000 and once past 20000", kind, ns)
		}
	}
}

// TestForcedImportReportsRemovals: a forced import tells Progress, for
// each kind it removed from the target, how many in all (once, under
// progressEvery), and nothing for a kind it had none of to remove (the
// sessions go with their users): not a line per batch.
func TestForcedImportReportsRemovals(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 20)
	backup := export(t, src)
	dst := backendtest.OpenBolt(t)
	fill(t, dst, 300) // the same two keys as src, with the same values
	if err := dst.Update(ctx, func(tx store.Tx) error { _, err := tx.Secret("target-only", 32); return err }); err != nil {
		t.Fatal(err)
	}
	var heard []string
	if _, err := Import(ctx, dst, bytes.NewReader(backup), ImportOptions{Force: true, BatchSize: 64, Progress: func(kind string, n int) {
		heard = append(heard, fmt.Sprint(kind, ": ", n))
	}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"removed users: 300", "removed groups: 3", "removed tombstones: 1",
		"removed single-use IDs: 5", "removed audit events: 300", "removed secrets: 1"}
	if !slices.Equal(heard, want) {
		t.Errorf("progress %q, want %q", heard, want)
	}
}

// lossyTarget reads as a target that lost one record of a kind after it
// was written (a damaged store, or another process deleting from it).
func lossyTarget(s store.Store, kind string) store.Store {
	return readsAs{s, func(tx store.Tx) store.Tx { return lossyTx{tx, kind} }}
}

type lossyTx struct {
	store.Tx
	kind string
}

func (tx lossyTx) Counts() (store.Counts, error) {
	c, err := tx.Tx.Counts()
	if n := map[string]*int{"groups": &c.Groups, "sessions": &c.Sessions, "tombstones": &c.Tombstones,
		"audit events": &c.AuditEvents}[tx.kind]; n != nil && *n > 0 {
		*n--
	}
	return c, err
}

func (tx lossyTx) ForEachConsumed(fn func(kind, id string, until time.Time) error) error {
	skipped := tx.kind != "single-use IDs"
	return tx.Tx.ForEachConsumed(func(kind, id string, until time.Time) error {
		if !skipped {
			skipped = true
			return nil
		}
		return fn(kind, id, until)
	})
}

// TestReadBackChecksEveryKind: the read-back at the end of an import and
// a copy compares the target's count of every kind with what was written,
// not only the users (TestCountsCrossChecked) and the keys: a target that
// lost a group, a session, a tombstone, an audit event or a single-use ID
// is refused (ErrCountMismatch, naming the kind) and stays marked
// unfinished, so that no one opens it.
func TestReadBackChecksEveryKind(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 10) // 3 groups, 5 sessions, a tombstone, 10 audit events, 5 single-use IDs
	backup := export(t, src)
	for _, tt := range []struct{ kind, says string }{
		{"groups", "copied 3 groups, the target holds 2"},
		{"sessions", "copied 5 sessions, the target holds 4"},
		{"tombstones", "copied 1 tombstones, the target holds 0"},
		{"audit events", "copied 10 audit events, the target holds 9"},
		{"single-use IDs", "copied 5 single-use IDs, the target holds 4"},
	} {
		for _, op := range []string{"import", "migration"} {
			t.Run(tt.kind+"/"+op, func(t *testing.T) {
				db := backendtest.OpenBolt(t)
				var err error
				if op == "import" {
					_, err = Import(ctx, lossyTarget(db, tt.kind), bytes.NewReader(backup), ImportOptions{})
				} else {
					_, err = Migrate(ctx, src, lossyTarget(db, tt.kind), ImportOptions{})
				}
				if !errors.Is(err, ErrCountMismatch) || !strings.Contains(err.Error(), tt.says) {
					t.Errorf("%v, want ErrCountMismatch saying %q", err, tt.says)
				}
				if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) {
					t.Errorf("the target is taken for finished: %v", err)
				}
			})
		}
	}
}

// TestForcedImportReadsFromWhereTheReaderStands: Import with Force reads
// the backup three times (check, rehearsal, import), seeking back each
// time to where r stood when it was called, not to the start of what r
// reads: a backup that follows other bytes in r imports.
func TestForcedImportReadsFromWhereTheReaderStands(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 20)
	want, _ := dump(t, src)
	prefix := []byte("not part of the backup\n")
	r := bytes.NewReader(append(append([]byte(nil), prefix...), export(t, src)...))
	if _, err := r.Seek(int64(len(prefix)), 0); err != nil {
		t.Fatal(err)
	}
	dst := backendtest.OpenBolt(t)
	fill(t, dst, 5)
	if _, err := Import(ctx, dst, r, ImportOptions{Force: true}); err != nil {
		t.Fatalf("forced import of a backup after %d other bytes: %v", len(prefix), err)
	}
	if d, _ := dump(t, dst); d != want {
		t.Error("the target differs from the backup")
	}
}

// TestRerunMarksTheTargetAfresh: a run that fails over a target an
// earlier one left marked replaces the mark with its own, so that what
// Caddy and the offline tools say of the target (store.CheckFinished)
// names the command that last failed on it and when, the one to run
// again: a failed migration followed by a failed forced restore says
// "import started", not "migration started".
func TestRerunMarksTheTargetAfresh(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 100)
	db := backendtest.OpenBolt(t)
	if _, err := Migrate(ctx, src, failingUpdates{db, new(atomic.Int32), 3}, ImportOptions{BatchSize: 64}); !errors.Is(err, ErrPartial) {
		t.Fatalf("migration failing at its third update: %v, want ErrPartial", err)
	}
	if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) || !strings.Contains(err.Error(), "migration started") {
		t.Fatalf("after the failed migration: %v", err)
	}
	_, err := Import(ctx, failingUpdates{db, new(atomic.Int32), 2}, bytes.NewReader(export(t, src)), ImportOptions{Force: true, BatchSize: 64})
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("forced import failing at its second update: %v, want ErrPartial", err)
	}
	if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) || !strings.Contains(err.Error(), "import started") {
		t.Errorf("after the failed import the target says %v, want the import's mark", err)
	}
}

// writerOnTarget is a target into which another process writes a key,
// flow-key with its own value, right before the import's first write
// transaction, as a Caddy started on it would.
type writerOnTarget struct {
	store.Store
	wrote *atomic.Bool
}

func (s writerOnTarget) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.wrote.CompareAndSwap(false, true) {
		err := s.Store.Update(ctx, func(tx store.Tx) error {
			_, err := tx.LoadOrStoreSecret("flow-key", []byte("another process's key"))
			return err
		})
		if err != nil {
			return err
		}
	}
	return s.Store.Update(ctx, fn)
}

// TestImportIntoATargetSomeoneWritesSaysSo: an import whose target gets a
// key of another value from another process meanwhile fails with
// ErrSecretConflict (the CLI then asks whether an instance is running on
// the target), not as a target that differs after the copy.
func TestImportIntoATargetSomeoneWritesSaysSo(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 10)
	backup := export(t, src)
	_, err := Import(ctx, writerOnTarget{backendtest.OpenBolt(t), new(atomic.Bool)}, bytes.NewReader(backup), ImportOptions{})
	if !errors.Is(err, ErrSecretConflict) {
		t.Errorf("import: %v, want ErrSecretConflict", err)
	}
	_, err = Migrate(ctx, src, writerOnTarget{backendtest.OpenBolt(t), new(atomic.Bool)}, ImportOptions{})
	if !errors.Is(err, ErrSecretConflict) {
		t.Errorf("migrate: %v, want ErrSecretConflict", err)
	}
}

// TestStartingOnlyWhenTheTargetChanges: ImportOptions.Starting ("replacing
// everything in …") is told once when the import goes ahead, and not at
// all when it is refused before it changes the target: a non-empty target
// without Force, a damaged backup or one no store takes with Force.
func TestStartingOnlyWhenTheTargetChanges(t *testing.T) {
	ctx := context.Background()
	_, lines := backupLines(t, 20)
	backup := rezip(t, lines)
	for _, tt := range []struct {
		name   string
		backup []byte
		force  bool
		calls  int
	}{
		{"goes ahead", backup, true, 1},
		{"non-empty target, not forced", backup, false, 0},
		{"truncated backup, forced", rezip(t, lines[:len(lines)-1]), true, 0},
		{"a backup no store takes, forced", rezip(t, edited(lines, func(l []string) []string {
			l[1] = `{"secret":{"name":"flow-key","value":""}}`
			return l
		})), true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := backendtest.OpenBolt(t)
			fill(t, dst, 5)
			calls := 0
			_, err := Import(ctx, dst, bytes.NewReader(tt.backup), ImportOptions{Force: tt.force, Starting: func() { calls++ }})
			if (err == nil) != (tt.calls == 1) || calls != tt.calls {
				t.Errorf("Starting told %d times (import: %v), want %d", calls, err, tt.calls)
			}
		})
	}
}

// TestMigrateTellsProbesApart: the probe that tells two stores apart is
// the one this copy wrote, not any of its kind: a source that holds the
// probe an earlier, refused forced copy into it left (it lasts a minute)
// is not taken for the target.
func TestMigrateTellsProbesApart(t *testing.T) {
	ctx := context.Background()
	a := backendtest.OpenBolt(t)
	fill(t, a, 10)
	b := backendtest.OpenBolt(t)
	fill(t, b, 5)
	if _, err := Migrate(ctx, emptySecretSource(a), b, ImportOptions{Force: true}); err == nil {
		t.Fatal("a copy of a source no store takes went through")
	}
	c := backendtest.OpenBolt(t)
	fill(t, c, 3)
	if _, err := Migrate(ctx, b, c, ImportOptions{Force: true}); err != nil {
		t.Errorf("forced copy from a store holding an earlier copy's probe: %v", err)
	}
}

// TestEndLineCountsEveryKind: a backup whose end line counts another
// number of any kind of record than the file holds (not only users,
// TestDamagedBackupsRefused) is refused as ErrCorrupt by Verify and by
// Import: the end line is what tells a complete backup from one that lost
// lines, whichever kind they were.
func TestEndLineCountsEveryKind(t *testing.T) {
	_, lines := backupLines(t, 20)
	last := len(lines) - 1
	for _, field := range []string{"secrets", "groups", "tombstones", "sessions", "session_tokens", "consumed", "audit_events"} {
		t.Run(field, func(t *testing.T) {
			end := lines[last]
			i := strings.Index(end, `"`+field+`":`)
			if i < 0 {
				t.Fatalf("no %s in %s", field, end)
			}
			i += len(field) + 3
			j := i + strings.IndexAny(end[i:], ",}")
			var n int
			if _, err := fmt.Sscan(end[i:j], &n); err != nil {
				t.Fatal(err)
			}
			data := rezip(t, edited(lines, func(l []string) []string {
				l[last] = end[:i] + fmt.Sprint(n+1) + end[j:]
				return l
			}))
			if _, err := Verify(bytes.NewReader(data)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify: %v, want ErrCorrupt", err)
			}
			if _, err := Import(context.Background(), backendtest.OpenBolt(t), bytes.NewReader(data), ImportOptions{}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Import: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestEmptyKeyIsCorrupt: a backup or source holding an empty key, which
// no store takes, is refused as damaged (ErrCorrupt, naming the key), not
// as a key the target lacks: without Force too, where no rehearsal runs
// first.
func TestEmptyKeyIsCorrupt(t *testing.T) {
	ctx := context.Background()
	backup := gz(t, []byte(`{"header":{"format":"caddy-sso-backup","version":2}}
{"secret":{"name":"zz","value":""}}
{"end":{"secrets":1,"users":0,"groups":0,"tombstones":0,"sessions":0,"session_tokens":0,"consumed":0,"audit_events":0}}
`))
	if _, err := Import(ctx, backendtest.OpenBolt(t), bytes.NewReader(backup), ImportOptions{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "secret zz is empty") {
		t.Errorf("import: %v, want ErrCorrupt for the empty key", err)
	}
	src := backendtest.OpenBolt(t)
	fill(t, src, 5)
	if _, err := Migrate(ctx, emptySecretSource(src), backendtest.OpenBolt(t), ImportOptions{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "secret zz-empty is empty") {
		t.Errorf("migrate: %v, want ErrCorrupt for the empty key", err)
	}
}
