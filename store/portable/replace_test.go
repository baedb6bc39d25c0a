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
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// lastUser returns the user last in ID order: the last one a backup
// holds, in the last batch an import writes.
func lastUser(t testing.TB, st store.Store) *store.User {
	t.Helper()
	var last *store.User
	err := st.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(u *store.User) error { last = u; return nil })
	})
	if err != nil || last == nil {
		t.Fatalf("last user: %v, %v", last, err)
	}
	return last
}

// rejoin deletes u and signs the same person in again as JIT would: a new
// user with u's link, email, userName and externalId, with a session and
// an audit event; and adds a record of every other kind. It returns the
// new user's ID.
func rejoin(t testing.TB, st store.Store, u *store.User) string {
	t.Helper()
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var id string
	err := st.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.DeleteUser(u.ID); err != nil {
			return err
		}
		again := *u
		again.ID, again.Created, again.Updated = "", now, now
		if err := tx.PutUser(&again); err != nil {
			return err
		}
		id = again.ID
		if err := tx.PutSession(&store.Session{Hash: fmt.Sprintf("%064x", 1<<40), UserID: id, IdP: "okta",
			Created: now, Expires: now.Add(time.Hour), LastSeen: now}); err != nil {
			return err
		}
		if err := tx.PutGroup(&store.Group{IdP: "okta", DisplayName: "Since", Members: []string{id}, Created: now, Updated: now}); err != nil {
			return err
		}
		if err := tx.PutTombstone(&store.Tombstone{IdP: "okta", Subject: "since", UserID: "x", Deleted: now}); err != nil {
			return err
		}
		if _, err := tx.Consume("oidc", "state-since", now.Add(time.Hour)); err != nil {
			return err
		}
		return tx.Audit(store.Event{Time: now, Type: store.EventUserCreated, IdP: "okta", UserID: id})
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestImportForceReplaces restores a backup with Force into the database
// it was taken from, after a user in the backup's last batch was deleted
// and the same person signed in again by JIT (a new user ID holding the
// same link). The import used to commit the first batches and then fail
// on the link (ErrLinkTaken), every time it ran, leaving a mix; now the
// target ends up holding exactly the backup.
func TestImportForceReplaces(t *testing.T) {
	ctx := context.Background()
	db := openPostgres(t)
	fill(t, db, 300)
	want, wc := dump(t, db)
	backup := export(t, db)
	gone := lastUser(t, db)
	newID := rejoin(t, db, gone)

	var progress []string
	got, err := Import(ctx, db, bytes.NewReader(backup), ImportOptions{Force: true, BatchSize: 64,
		Progress: func(kind string, n int) { progress = append(progress, fmt.Sprint(kind, ": ", n)) }})
	if err != nil {
		t.Fatalf("forced import: %v", err)
	}
	if got != wc {
		t.Errorf("import counts %+v, want %+v", got, wc)
	}
	if d, _ := dump(t, db); d != want {
		t.Errorf("the target differs from the backup:\n%s", storetest.FirstLineDiff(want, d, 2))
	}
	err = db.View(ctx, func(tx store.Tx) error {
		back, err := tx.UserByLink(gone.Links[0].IdP, gone.Links[0].Subject)
		if err != nil || back.ID != gone.ID {
			t.Errorf("the link leads to %+v (%v), want the backup's user %s", back, err, gone.ID)
		}
		if _, err := tx.User(newID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the user JIT re-created: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"removed users: 300", "removed groups: 4", "removed single-use IDs: 6", "removed audit events: 301"} {
		if !strings.Contains(strings.Join(progress, "\n"), p) {
			t.Errorf("progress lacks %q: %q", p, progress)
		}
	}
}

// failingUpdates fails its store's Update number failAt (counting from 1),
// as a lost connection would.
type failingUpdates struct {
	store.Store
	n      *atomic.Int32
	failAt int32
}

func (s failingUpdates) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.n.Add(1) == s.failAt {
		return errors.New("connection lost")
	}
	return s.Store.Update(ctx, fn)
}

// TestImportForceRerunsAfterFailure: a forced import that fails part-way,
// while emptying the target and while writing the backup, says that the
// target holds part of it (ErrPartial); the same import run again
// finishes with exactly the backup.
func TestImportForceRerunsAfterFailure(t *testing.T) {
	ctx := context.Background()
	db := openPostgres(t)
	fill(t, db, 300)
	want, _ := dump(t, db)
	backup := export(t, db)
	rejoin(t, db, lastUser(t, db))

	for _, failAt := range []int32{2, 12} { // while removing users; while writing
		_, err := Import(ctx, failingUpdates{db, new(atomic.Int32), failAt}, bytes.NewReader(backup), ImportOptions{Force: true, BatchSize: 64})
		if !errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), "connection lost") {
			t.Fatalf("import failing at update %d: %v, want ErrPartial", failAt, err)
		}
		// What is left must not be taken for a store.
		if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) || !strings.Contains(err.Error(), "import started") {
			t.Errorf("after an import failing at update %d, the target is taken for finished: %v", failAt, err)
		}
	}
	if d, _ := dump(t, db); d == want {
		t.Fatal("the failed imports wrote everything")
	}
	if _, err := Import(ctx, db, bytes.NewReader(backup), ImportOptions{Force: true, BatchSize: 64}); err != nil {
		t.Fatalf("the rerun: %v", err)
	}
	if d, _ := dump(t, db); d != want {
		t.Errorf("after the rerun the target differs from the backup:\n%s", storetest.FirstLineDiff(want, d, 2))
	}
	if err := store.CheckFinished(ctx, db); err != nil {
		t.Errorf("after the rerun: %v", err)
	}
}

// TestUnfinishedImportIsMarked: an import or migration into an empty
// target that fails part-way leaves that target marked, so that Caddy and
// the offline tools refuse it (store.CheckFinished); one without Force
// then refuses it, saying why, and one with Force finishes and lifts the
// mark. An export of a marked store (an admin's backup taken meanwhile)
// leaves the mark out. The mark is there from the first write to the
// last: an import that fails reading the target back keeps it.
func TestUnfinishedImportIsMarked(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 300)
	want, _ := dump(t, src)
	backup := export(t, src)

	for _, tt := range []struct {
		name string
		run  func(to store.Store, force bool) error
	}{
		{"import", func(to store.Store, force bool) error {
			_, err := Import(ctx, to, bytes.NewReader(backup), ImportOptions{Force: force, BatchSize: 64})
			return err
		}},
		{"migration", func(to store.Store, force bool) error {
			_, err := Migrate(ctx, src, to, ImportOptions{Force: force, BatchSize: 64})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			if err := tt.run(failingUpdates{db, new(atomic.Int32), 3}, false); !errors.Is(err, ErrPartial) {
				t.Fatalf("failing at the third update: %v, want ErrPartial", err)
			}
			if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) || !strings.Contains(err.Error(), tt.name+" started") {
				t.Fatalf("the part-written target is taken for finished: %v", err)
			}
			var exported bytes.Buffer
			if _, err := Export(ctx, db, &exported, ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := store.CheckFinished(ctx, importInto(t, exported.Bytes())); err != nil {
				t.Errorf("an export of the marked store carries the mark: %v", err)
			}

			err := tt.run(db, false)
			if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "did not finish") {
				t.Errorf("again without Force: %v, want ErrNotEmpty saying an earlier one did not finish", err)
			}
			if err := tt.run(db, true); err != nil {
				t.Fatalf("again with Force: %v", err)
			}
			if err := store.CheckFinished(ctx, db); err != nil {
				t.Errorf("after the forced rerun: %v", err)
			}
			if d, _ := dump(t, db); d != want {
				t.Errorf("after the forced rerun the target differs from the source:\n%s", storetest.FirstLineDiff(want, d, 2))
			}
		})
	}

	// A target that does not read back as the backup stays marked.
	db := backendtest.OpenBolt(t)
	_, err := Import(ctx, secretDropper(db), bytes.NewReader(backup), ImportOptions{BatchSize: 64})
	if !errors.Is(err, ErrCountMismatch) {
		t.Fatalf("an import whose target loses a key: %v, want ErrCountMismatch", err)
	}
	if err := store.CheckFinished(ctx, db); !errors.Is(err, store.ErrUnfinishedImport) {
		t.Errorf("a target that failed its read-back is taken for finished: %v", err)
	}
}

// secretDropper reads as a store holding no secret but the
// unfinished-import mark, as a target that lost the backup's keys would.
func secretDropper(s store.Store) store.Store {
	return readsAs{s, func(tx store.Tx) store.Tx { return noSecrets{tx} }}
}

type noSecrets struct{ store.Tx }

func (tx noSecrets) ForEachSecret(fn func(name string, value []byte) error) error {
	return tx.Tx.ForEachSecret(func(name string, value []byte) error {
		if name != store.UnfinishedImport {
			return nil
		}
		return fn(name, value)
	})
}

// importInto imports backup into a new bbolt store and returns it.
func importInto(t *testing.T, backup []byte) store.Store {
	t.Helper()
	db := backendtest.OpenBolt(t)
	if _, err := Import(context.Background(), db, bytes.NewReader(backup), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestMigrateForceSecrets: a forced copy into a target that holds keys of
// its own once succeeded ("counts match") keeping the target's keys, so
// that the IdP's registered SP certificate and the copied sessions' sealed
// tokens no longer matched, and was then refused, as the store could not
// delete a key. Now the target's keys that the source lacks or holds with
// another value are deleted and the source's written: the target holds
// exactly the source, keys included. Over a target whose keys are the
// source's it replaces everything else.
func TestMigrateForceSecrets(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 120)
	want, _ := dump(t, src)

	t.Run("target with its own keys", func(t *testing.T) {
		dst := openPostgres(t)
		err := dst.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.LoadOrStoreSecret("saml-sp-okta", []byte("the target's own SP key")); err != nil {
				return err
			}
			_, err := tx.Secret("session-tokens-key", 32)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(want, `"saml-sp-okta"`) {
			t.Fatal("the source holds no saml-sp-okta")
		}
		rep, err := Migrate(ctx, src, dst, ImportOptions{Force: true, BatchSize: 1}) // a batch per key removed
		if err != nil {
			t.Fatalf("forced copy over the target's own keys: %v (copied %+v)", err, rep.Copied)
		}
		if rep.Source != rep.Target {
			t.Errorf("source %+v, target %+v", rep.Source, rep.Target)
		}
		if d, _ := dump(t, dst); d != want {
			t.Errorf("the target differs from the source (kept its own keys?):\n%s", storetest.FirstLineDiff(want, d, 2))
		}
	})
	t.Run("target with the source's keys", func(t *testing.T) {
		dst := openPostgres(t)
		if _, err := Migrate(ctx, src, dst, ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		rejoin(t, dst, lastUser(t, dst))
		rep, err := Migrate(ctx, src, dst, ImportOptions{Force: true, BatchSize: 50})
		if err != nil {
			t.Fatalf("forced copy: %v", err)
		}
		if rep.Source != rep.Target {
			t.Errorf("source %+v, target %+v", rep.Source, rep.Target)
		}
		if d, _ := dump(t, dst); d != want {
			t.Errorf("the target differs from the source:\n%s", storetest.FirstLineDiff(want, d, 2))
		}
	})
}

// keptSecret is a store whose reads show another value for one secret,
// as a target that kept its own key would.
type keptSecret struct{ store.Store }

func (s keptSecret) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(keptSecretTx{tx}) })
}

type keptSecretTx struct{ store.Tx }

func (tx keptSecretTx) ForEachSecret(fn func(string, []byte) error) error {
	return tx.Tx.ForEachSecret(func(name string, value []byte) error {
		if name == "flow-key" {
			value = []byte("the target's own")
		}
		return fn(name, value)
	})
}

// TestImportChecksSecretValues: the check after an import and a copy
// compares the secrets' values, not only how many there are.
func TestImportChecksSecretValues(t *testing.T) {
	ctx := context.Background()
	src := backendtest.OpenBolt(t)
	fill(t, src, 10)
	_, err := Import(ctx, keptSecret{backendtest.OpenBolt(t)}, bytes.NewReader(export(t, src)), ImportOptions{})
	if !errors.Is(err, ErrCountMismatch) || !strings.Contains(err.Error(), "flow-key") {
		t.Errorf("import: %v, want ErrCountMismatch for flow-key", err)
	}
	_, err = Migrate(ctx, src, keptSecret{backendtest.OpenBolt(t)}, ImportOptions{})
	if !errors.Is(err, ErrCountMismatch) || !strings.Contains(err.Error(), "flow-key") {
		t.Errorf("migrate: %v, want ErrCountMismatch for flow-key", err)
	}
}

// storeCounts is what st holds.
func storeCounts(t testing.TB, st store.Store) store.Counts {
	t.Helper()
	var c store.Counts
	err := st.View(context.Background(), func(tx store.Tx) error {
		var err error
		c, err = tx.Counts()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// secretCount is how many secrets st holds.
func secretCount(t testing.TB, st store.Store) int {
	t.Helper()
	n := 0
	err := st.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachSecret(func(string, []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMigrateForceSameDatabase: two connections to one PostgreSQL
// database are one store; replacing the target would empty the source
// before it was read, so Migrate refuses and nothing is removed.
func TestMigrateForceSameDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	var a, b *postgres.DB
	for _, db := range []**postgres.DB{&a, &b} {
		var err error
		if *db, err = postgres.Open(ctx, postgres.Config{DSN: dsn}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { (*db).Close() })
	}
	fill(t, a, 20)
	before := storeCounts(t, a)
	if _, err := Migrate(ctx, a, b, ImportOptions{Force: true}); !errors.Is(err, ErrSameStore) {
		t.Fatalf("Migrate into the same database: %v, want ErrSameStore", err)
	}
	if after := storeCounts(t, a); after.Users != before.Users || after.Sessions != before.Sessions || after.AuditEvents != before.AuditEvents {
		t.Errorf("the database went from %+v to %+v", before, after)
	}
}

// TestImportForceBadBackupLeavesTarget: a backup that reads well but holds
// what no store takes (an empty secret; a session of a user it does not
// hold) fails before Force empties the target: its users and keys are
// still there. Nor does it say that the target holds part of the backup
// (ErrPartial) when the rehearsal's scratch store did, having written
// batches before the bad record: that one is thrown away, and the message
// sent the operator to rerun --force on a target that was never touched.
func TestImportForceBadBackupLeavesTarget(t *testing.T) {
	ctx := context.Background()
	db := openPostgres(t)
	fill(t, db, 20)
	users, keys := storeCounts(t, db).Users, secretCount(t, db)
	_, lines := backupLines(t, 1200)
	for _, tt := range []struct {
		name   string
		backup []byte
	}{
		{"in the first batch", gz(t, []byte(`{"header":{"format":"caddy-sso-backup","version":1}}
{"secret":{"name":"zz","value":""}}
{"end":{"secrets":1,"users":0,"groups":0,"tombstones":0,"sessions":0,"session_tokens":0,"consumed":0,"audit_events":0}}
`))},
		{"after the first batch", rezip(t, orphanLastSession(t, lines))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Verify(bytes.NewReader(tt.backup)); err != nil {
				t.Fatalf("the backup should read well: %v", err)
			}
			_, err := Import(ctx, db, bytes.NewReader(tt.backup), ImportOptions{Force: true})
			if err == nil || errors.Is(err, ErrPartial) || strings.Contains(err.Error(), ErrPartial.Error()) ||
				!strings.Contains(err.Error(), "the target was not touched") {
				t.Fatalf("forced import of a backup no store takes: %v, want a refusal before the target changed", err)
			}
			if u, k := storeCounts(t, db).Users, secretCount(t, db); u != users || k != keys {
				t.Errorf("the target went from %d users and %d keys to %d and %d", users, keys, u, k)
			}
			if err := store.CheckFinished(ctx, db); err != nil {
				t.Errorf("the untouched target is marked: %v", err)
			}
		})
	}
	// Written into an empty store that is kept, the same backup leaves
	// part of itself there, and says so; into one its caller throws away
	// (Scratch: a bbolt target's new file) it does not.
	bad := rezip(t, orphanLastSession(t, lines))
	for _, scratch := range []bool{false, true} {
		_, err := Import(ctx, backendtest.OpenBolt(t), bytes.NewReader(bad), ImportOptions{Scratch: scratch})
		if err == nil || errors.Is(err, ErrPartial) != !scratch {
			t.Errorf("import (Scratch %v) failing after the first batch: %v, want ErrPartial %v", scratch, err, !scratch)
		}
	}
}

// orphanLastSession is lines (backupLines) with the last session's user
// rewritten to one the backup does not hold: it reads well, and fails
// when written, after the first batch when there are more than 500 lines
// before it.
func orphanLastSession(t *testing.T, lines []string) []string {
	t.Helper()
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(l, `{"session":`) {
			last = i
		}
	}
	if last <= DefaultBatchSize {
		t.Fatalf("the last session is line %d, not after the first batch", last)
	}
	out := append([]string(nil), lines...)
	const field = `"user_id":"`
	i := strings.Index(out[last], field) + len(field)
	j := strings.Index(out[last][i:], `"`)
	out[last] = out[last][:i] + "no-such-user" + out[last][i+j:]
	return out
}
