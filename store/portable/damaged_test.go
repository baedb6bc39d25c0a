package portable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// backupLines returns a bolt store's backup, unzipped, as its lines (the
// header first, the end line last).
func backupLines(t *testing.T, n int) (store.Store, []string) {
	t.Helper()
	src := backendtest.OpenBolt(t)
	fill(t, src, n)
	raw := strings.TrimSuffix(string(gunzip(t, export(t, src))), "\n")
	return src, strings.Split(raw, "\n")
}

// rezip joins lines into a gzip'd backup.
func rezip(t *testing.T, lines []string) []byte {
	t.Helper()
	return gz(t, []byte(strings.Join(lines, "\n")+"\n"))
}

// edited returns a copy of lines changed by fn.
func edited(lines []string, fn func(l []string) []string) []string {
	return fn(append([]string(nil), lines...))
}

// TestDamagedBackupsRefused: a backup that is not one Export wrote, whole,
// is refused as ErrCorrupt both by Verify (which `backup` runs on the file
// it wrote and `restore` before it touches the target) and by Import,
// each check on its own: Import without Force does not run Verify first.
// A damaged backup that got through would restore a store other than the
// one backed up (a record past the end line, a second key of one name), or
// hide a truncation.
func TestDamagedBackupsRefused(t *testing.T) {
	_, lines := backupLines(t, 20)
	last := len(lines) - 1
	if !strings.HasPrefix(lines[0], `{"header":`) || !strings.HasPrefix(lines[last], `{"end":`) ||
		!strings.HasPrefix(lines[1], `{"secret":{"name":"flow-key"`) || !strings.Contains(lines[last], `"secrets":2,`) ||
		!strings.Contains(lines[last], `"users":20,`) {
		t.Fatalf("unexpected backup layout: %s … %s", lines[0], lines[last])
	}
	insert := func(at int, l ...string) func([]string) []string {
		return func(ls []string) []string { return append(ls[:at], append(l, ls[at:]...)...) }
	}
	replace := func(i int, old, new string) func([]string) []string {
		return func(ls []string) []string { ls[i] = strings.Replace(ls[i], old, new, 1); return ls }
	}
	for _, tt := range []struct {
		name   string
		lines  []string
		verify bool // Verify only: Import's refusal of it is in TestImportRefusals
	}{
		{"second header", edited(lines, insert(2, lines[0])), false},
		{"version 0", edited(lines, replace(0, `"version":2`, `"version":0`)), false},
		{"newer version", edited(lines, replace(0, `"version":2`, `"version":3`)), true},
		{"other format", edited(lines, replace(0, Format, "other-backup")), true},
		{"no header", lines[1:], true},
		{"no end line", lines[:last], true},
		{"a record after the end line", append(edited(lines, func(l []string) []string { return l }),
			`{"consumed":{"kind":"saml","id":"late","until":"2030-01-01T00:00:00Z"}}`), false},
		{"the end line counts another number of users", edited(lines, replace(last, `"users":20,`, `"users":19,`)), false},
		{"a secret twice, with another value", edited(edited(lines, insert(2, `{"secret":{"name":"flow-key","value":"b3RoZXI="}}`)),
			replace(last+1, `"secrets":2,`, `"secrets":3,`)), false},
		{"an empty record", edited(lines, insert(last, `{}`)), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := rezip(t, tt.lines)
			if _, err := Verify(bytes.NewReader(data)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify: %v, want ErrCorrupt", err)
			}
			if tt.verify {
				return
			}
			if _, err := Import(context.Background(), backendtest.OpenBolt(t), bytes.NewReader(data), ImportOptions{BatchSize: 8}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Import: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestInspectAndBackup: Inspect gives the backup's header (restore says
// when the backup was taken from it), and Backup the number of bytes it
// wrote (the admin API's trailer, which the client checks against what it
// received).
func TestInspectAndBackup(t *testing.T) {
	src := backendtest.OpenBolt(t)
	fill(t, src, 10)
	before := time.Now().Add(-time.Second)
	var buf bytes.Buffer
	n, err := Backup(context.Background(), src, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Errorf("Backup wrote %d bytes, says %d", buf.Len(), n)
	}
	h, c, err := Inspect(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if h.Format != Format || h.Version != Version || h.Created.Before(before) || h.Created.After(time.Now()) || h.Counts.Users != 10 {
		t.Errorf("header %+v", h)
	}
	if c.Users != 10 || c.Secrets != 2 || c.Consumed != 5 {
		t.Errorf("counts %+v", c)
	}
}

// TestImportRefusesNonEmptyTarget: without Force, a target holding
// anything at all (a user, a single-use ID, an audit event) is refused
// before it is written to, saying what it holds: the import would
// otherwise mix the backup with it, and fail at the read-back with the
// target part-written.
func TestImportRefusesNonEmptyTarget(t *testing.T) {
	ctx := context.Background()
	src, lines := backupLines(t, 10)
	backup := rezip(t, lines)
	for _, tt := range []struct {
		name  string
		write func(tx store.Tx) error
		says  string
	}{
		{"a user", func(tx store.Tx) error {
			return tx.PutUser(&store.User{Email: "a@example.com", Source: store.SourceJIT})
		}, "1 users"},
		{"a single-use ID", func(tx store.Tx) error {
			_, err := tx.Consume("saml", "id-1", time.Now().Add(time.Hour))
			return err
		}, "1 single-use IDs"},
		{"an audit event", func(tx store.Tx) error { return tx.Audit(store.Event{Type: "x"}) }, "1 audit events"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := backendtest.OpenBolt(t)
			if err := dst.Update(ctx, tt.write); err != nil {
				t.Fatal(err)
			}
			want, _ := dump(t, dst)
			_, err := Import(ctx, dst, bytes.NewReader(backup), ImportOptions{})
			if !errors.Is(err, ErrNotEmpty) || errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("import: %v, want ErrNotEmpty saying %q", err, tt.says)
			}
			_, err = Migrate(ctx, src, dst, ImportOptions{})
			if !errors.Is(err, ErrNotEmpty) || errors.Is(err, ErrPartial) {
				t.Errorf("migrate: %v, want ErrNotEmpty", err)
			}
			if d, _ := dump(t, dst); d != want {
				t.Error("the refused target was changed")
			}
		})
	}
}

// TestProgressEveryTenThousand: Progress hears of a kind every
// progressEvery records, not every batch: an operator's terminal gets a
// line per 10,000 users, not one per 64. A store of 300 users says
// nothing while it is exported or imported.
func TestProgressEveryTenThousand(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 300)
	var heard []string
	progress := func(kind string, n int) { heard = append(heard, fmt.Sprint(kind, " ", n)) }
	var buf bytes.Buffer
	if _, err := Export(ctx, src, &buf, ExportOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, backendtest.OpenBolt(t), bytes.NewReader(buf.Bytes()), ImportOptions{BatchSize: 64, Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if len(heard) != 0 {
		t.Errorf("progress heard %q under %d records of each kind", heard, progressEvery)
	}
}

// readsAs is a store whose reads pass through wrap: each test store below
// overrides one Tx method to read as a damaged or lossy store would, and
// writes go to the real store underneath.
type readsAs struct {
	store.Store
	wrap func(store.Tx) store.Tx
}

func (s readsAs) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(s.wrap(tx)) })
}

// lostUser reads as a store whose counters say one user fewer than it
// holds (when it holds any), as a damaged store's would.
func lostUser(s store.Store) store.Store {
	return readsAs{s, func(tx store.Tx) store.Tx { return lostUserTx{tx} }}
}

type lostUserTx struct{ store.Tx }

func (tx lostUserTx) Counts() (store.Counts, error) {
	c, err := tx.Tx.Counts()
	if c.Users > 0 {
		c.Users--
	}
	return c, err
}

// TestCountsCrossChecked: an export whose records do not match the
// store's own counts fails instead of writing a backup whose header lies,
// and an import or copy whose target does not count what was written is
// refused (ErrCountMismatch) and stays marked unfinished.
func TestCountsCrossChecked(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 10)
	if _, err := Export(ctx, lostUser(src), &bytes.Buffer{}, ExportOptions{}); err == nil || !strings.Contains(err.Error(), "the store counts") {
		t.Errorf("export of a store whose counts differ from its records: %v, want a refusal", err)
	}
	backup := export(t, src)
	for _, tt := range []struct {
		name string
		run  func(to store.Store) error
	}{
		{"import", func(to store.Store) error {
			_, err := Import(ctx, to, bytes.NewReader(backup), ImportOptions{})
			return err
		}},
		{"migration", func(to store.Store) error { _, err := Migrate(ctx, src, to, ImportOptions{}); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			err := tt.run(lostUser(db))
			if !errors.Is(err, ErrCountMismatch) || !strings.Contains(err.Error(), "copied 10 users, the target holds 9") {
				t.Errorf("%v, want ErrCountMismatch for the users", err)
			}
			if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) {
				t.Errorf("the target is taken for finished: %v", err)
			}
		})
	}
}

// emptySecretSource reads as a store holding an empty secret, which no
// store takes.
func emptySecretSource(s store.Store) store.Store {
	return readsAs{s, func(tx store.Tx) store.Tx { return emptySecretTx{tx} }}
}

type emptySecretTx struct{ store.Tx }

func (tx emptySecretTx) ForEachSecret(fn func(string, []byte) error) error {
	if err := tx.Tx.ForEachSecret(fn); err != nil {
		return err
	}
	return fn("zz-empty", []byte{})
}

// orphanSessionsSource reads as a store whose sessions belong to a user
// it does not hold, which no store takes.
func orphanSessionsSource(s store.Store) store.Store {
	return readsAs{s, func(tx store.Tx) store.Tx { return orphanSessionsTx{tx} }}
}

type orphanSessionsTx struct{ store.Tx }

func (tx orphanSessionsTx) ForEachSession(after string, fn func(*store.Session) error) error {
	return tx.Tx.ForEachSession(after, func(s *store.Session) error {
		orphan := *s
		orphan.UserID = "no-such-user"
		return fn(&orphan)
	})
}

// TestMigrateForceBadSourceLeavesTarget: as TestImportForceBadBackupLeavesTarget
// for a direct copy: a source that reads well but holds what no store
// takes fails in the rehearsal, before Force empties the target, and does
// not say (ErrPartial) that the target holds part of it, also when the bad
// record comes after the first batch, which the rehearsal's scratch store
// had taken. Only the probe that tells the stores apart (sameStore, a
// single-use ID that expires within a minute) is left in the target.
func TestMigrateForceBadSourceLeavesTarget(t *testing.T) {
	ctx := context.Background()
	withoutProbe := func(d string) string { // and without the end line, which counts it
		var out []string
		for l := range strings.Lines(d) {
			if !strings.Contains(l, `"kind":"`+probeKind+`"`) && !strings.HasPrefix(l, `{"end":`) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "")
	}
	for _, tt := range []struct {
		name  string
		users int
		bad   func(store.Store) store.Store
	}{
		{"in the first batch", 5, emptySecretSource},
		{"after the first batch", 1200, orphanSessionsSource},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := backendtest.OpenBolt(t)
			fill(t, src, tt.users)
			dst := backendtest.OpenBolt(t)
			fill(t, dst, 20)
			before, _ := dump(t, dst)
			want := withoutProbe(before)
			_, err := Migrate(ctx, tt.bad(src), dst, ImportOptions{Force: true})
			if err == nil || errors.Is(err, ErrPartial) || strings.Contains(err.Error(), ErrPartial.Error()) ||
				!strings.Contains(err.Error(), "the target was not touched") {
				t.Fatalf("forced copy of a source no store takes: %v, want a refusal before the target changed", err)
			}
			if d, _ := dump(t, dst); withoutProbe(d) != want {
				t.Errorf("the target changed:\n%s", storetest.FirstLineDiff(want, withoutProbe(d), 2))
			}
			if err := store.CheckFinished(ctx, dst); err != nil {
				t.Errorf("the untouched target is marked: %v", err)
			}
		})
	}
}

// TestForcedReplaceFailingAnywhereStaysMarked: a forced import or copy
// that fails at any of its write transactions (emptying the target,
// writing the source, lifting the mark) leaves the target marked
// unfinished, so that neither Caddy nor the offline tools open what is
// left; the emptying keeps the mark while it deletes the target's other
// secrets. Run again, it finishes.
func TestForcedReplaceFailingAnywhereStaysMarked(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 20)
	backup := export(t, src)
	for _, tt := range []struct {
		name string
		run  func(to store.Store) error
	}{
		{"import", func(to store.Store) error {
			_, err := Import(ctx, to, bytes.NewReader(backup), ImportOptions{Force: true, BatchSize: 16})
			return err
		}},
		{"migration", func(to store.Store) error {
			_, err := Migrate(ctx, src, to, ImportOptions{Force: true, BatchSize: 16})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			fill(t, db, 10)
			if err := db.Update(ctx, func(tx store.Tx) error { _, err := tx.Secret("target-only", 32); return err }); err != nil {
				t.Fatal(err)
			}
			for failAt := int32(1); ; failAt++ {
				err := tt.run(failingUpdates{db, new(atomic.Int32), failAt})
				if err == nil {
					if failAt < 6 {
						t.Fatalf("finished with its update %d failing", failAt)
					}
					break
				}
				// The first (the import's) or the first two (the copy's,
				// whose first writes the probe of sameStore) fail with the
				// target unchanged.
				if !errors.Is(err, ErrPartial) {
					if failAt > 2 {
						t.Fatalf("failing at update %d: %v, want ErrPartial", failAt, err)
					}
					continue
				}
				if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) {
					t.Fatalf("failing at update %d, the target is taken for finished: %v", failAt, err)
				}
			}
			if err := store.CheckFinished(ctx, db); err != nil {
				t.Errorf("after the run that finished: %v", err)
			}
		})
	}
}
