package cli_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestMain stops the throwaway PostgreSQL cluster (pgtest) when the tests end.
func TestMain(m *testing.M) { pgtest.Main(m) }

// openPG returns a fresh, empty PostgreSQL database's DSN and the store on it.
func openPG(t *testing.T) (string, *postgres.DB) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	db, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return dsn, db
}

// fillJIT writes n users as JIT sign-ins make them (link, email, userName,
// externalId: prefix and a number), every other one with a session and
// sealed tokens, an audit event each, and the keys a running instance
// makes; keys holds their values.
func fillJIT(t *testing.T, st store.Store, prefix string, n int, keys map[string]string) {
	t.Helper()
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	err := st.Update(context.Background(), func(tx store.Tx) error {
		for name, value := range keys {
			if _, err := tx.LoadOrStoreSecret(name, []byte(value)); err != nil {
				return err
			}
		}
		for i := range n {
			sub := fmt.Sprintf("%s%04d", prefix, i)
			u := &store.User{Email: sub + "@example.com", Active: true, Source: store.SourceJIT, IdP: "test",
				UserName: sub + "@example.com", ExternalID: sub, Links: []store.Link{{IdP: "test", Subject: sub}},
				Created: t0, Updated: t0}
			if err := tx.PutUser(u); err != nil {
				return err
			}
			if i%2 == 0 {
				s := &store.Session{Hash: fmt.Sprintf("%064x", i), UserID: u.ID, IdP: "test", Created: t0,
					Expires: t0.Add(time.Hour), LastSeen: t0, Logout: store.LogoutInfo{Subject: sub}}
				if err := tx.PutSession(s); err != nil {
					return err
				}
				if err := tx.PutSessionTokens(s.Hash, []byte("sealed with session-tokens-key")); err != nil {
					return err
				}
			}
			if err := tx.Audit(store.Event{Time: t0, Type: store.EventUserCreated, IdP: "test", UserID: u.ID}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// contents is everything st holds, in the backup format without its
// header: two stores holding the same records give the same contents.
func contents(t *testing.T, st store.Store) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := portable.Export(context.Background(), st, &buf, portable.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(raw), "\n")
	return rest
}

func secretsOf(t *testing.T, st store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := st.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachSecret(func(name string, value []byte) error { out[name] = string(value); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var sourceKeys = map[string]string{
	"session-tokens-key": "the source's session key, 32 bytes",
	"saml-sp-key/corp":   "the source's SP key and certificate",
	"flow-cookie-key":    "the source's flow cookie key......",
}

// replacedContents is contents(t, st) after a restore or migrate: it
// checks that the last record is the event of typ the command appended
// (account.EventStoreRestored, EventStoreMigrated), and leaves it out,
// and the end line, whose counts include it; compare with
// sourceContents(want).
func replacedContents(t *testing.T, st store.Store, typ string) string {
	t.Helper()
	lines := strings.SplitAfter(sourceContents(contents(t, st)), "\n")
	last := len(lines) - 2 // the final element is empty
	if last < 0 || !strings.HasPrefix(lines[last], `{"audit":`) || !strings.Contains(lines[last], `"type":"`+typ+`"`) {
		t.Errorf("the last record is not a %s event: %q", typ, lines[max(last, 0)])
		return strings.Join(lines, "")
	}
	return strings.Join(lines[:last], "")
}

// sourceContents is contents less its end line (the counts).
func sourceContents(c string) string {
	body, _, _ := strings.Cut(c, `{"end":`)
	return body
}

// backedUpPG returns a fresh PostgreSQL database filled with 600 JIT users
// (fillJIT), the --store flag naming it, and the backup file of it that
// `caddy sso backup` wrote.
func backedUpPG(t *testing.T) (dsn string, db *postgres.DB, pgStore, file string) {
	t.Helper()
	dsn, db = openPG(t)
	fillJIT(t, db, "sub-", 600, sourceKeys)
	pgStore = "--store=postgres:" + dsn
	file = filepath.Join(t.TempDir(), "sso.jsonl.gz")
	mustCLI(t, "backup", file, pgStore)
	return dsn, db, pgStore, file
}

// TestCLIRestoreForcePostgres: `restore --force` of a backup into the
// database it came from, after a user of the backup was deleted and the
// same person signed in again by JIT (a new user ID with the same IdP
// link). It used to commit the first batches of 500 records and then stop
// on the link, every time it ran, leaving a mix of backup and current
// data. Now the database holds exactly the backup afterwards: the deleted
// user is back, the re-created one gone.
func TestCLIRestoreForcePostgres(t *testing.T) {
	ctx := context.Background()
	_, db, pgStore, file := backedUpPG(t)
	want := contents(t, db)

	// Since the backup: the user last in ID order (in the last batch of a
	// restore) was deleted, and signed in again by JIT.
	gone := lastUserOf(t, db)
	var newID string
	err := db.Update(ctx, func(tx store.Tx) error {
		if err := tx.DeleteUser(gone.ID); err != nil {
			return err
		}
		again := *gone
		again.ID = ""
		if err := tx.PutUser(&again); err != nil {
			return err
		}
		newID = again.ID
		// And keys changed: a rotation added one the backup lacks, and
		// one was replaced.
		if _, err := tx.LoadOrStoreSecret("upstream-jwt-es256/60/123", []byte("a key made since the backup")); err != nil {
			return err
		}
		if err := tx.DeleteSecret("session-tokens-key"); err != nil {
			return err
		}
		if _, err := tx.LoadOrStoreSecret("session-tokens-key", []byte("a new session key since the backup")); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventUserCreated, IdP: "test", UserID: newID})
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := cli(ctx, "restore", file, pgStore); err == nil || !strings.Contains(err.Error(), "--force replaces everything") {
		t.Errorf("restore into a database that holds records, without --force: %v", err)
	}
	out := mustCLI(t, "restore", "--force", file, pgStore)
	want = sourceContents(want)
	// Audit events: the 600 of the fill, the backup's own store.backed_up
	// (an offline backup of PostgreSQL is audited), and the one since.
	for _, w := range []string{"replacing everything in postgres database", "removed users: 600", "removed audit events: 602", "removed secrets: 2", "restored from"} {
		if !strings.Contains(out, w) {
			t.Errorf("restore --force said, without %q:\n%s", w, out)
		}
	}
	if got := replacedContents(t, db, account.EventStoreRestored); got != want {
		t.Errorf("after restore --force the database is not the backup:\n%s", storetest.FirstLineDiff(want, got, 2))
	}
	err = db.View(ctx, func(tx store.Tx) error {
		back, err := tx.UserByLink("test", gone.Links[0].Subject)
		if err != nil || back.ID != gone.ID {
			t.Errorf("the link leads to %v (%v), want the backup's user %s", back, err, gone.ID)
		}
		if _, err := tx.User(newID); err == nil {
			t.Errorf("the user JIT re-created after the backup is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCLIMigrateForceKeys: `migrate --force` into a database that already
// holds keys of its own once kept them and still said "counts match": the
// IdP's registered SP certificate and the copied sessions' sealed tokens
// then no longer matched. Then it was refused, as the store could not
// delete a key. Now the target's keys give way to the source's: those the
// source lacks or holds with another value are deleted, and the database
// ends up holding exactly the source. A bbolt target is rebuilt, keys and
// all.
func TestCLIMigrateForceKeys(t *testing.T) {
	ctx := context.Background()
	srcPath := filepath.Join(t.TempDir(), "sso.db")
	src, err := bolt.Open(srcPath, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillJIT(t, src, "sub-", 40, sourceKeys)
	want := sourceContents(contents(t, src))
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	from := "--from=bolt:" + srcPath

	// A database that an instance started on: it made its own keys.
	dsn, db := openPG(t)
	fillJIT(t, db, "other-", 0, map[string]string{
		"session-tokens-key":        "the target's own session key.....",
		"saml-sp-key/corp":          "the target's own SP key",
		"flow-cookie-key":           sourceKeys["flow-cookie-key"], // the same: kept
		"upstream-jwt-es256/60/999": "a key the source does not have",
	})
	out, err := cli(ctx, "migrate", from, "--to=postgres:"+dsn, "--force")
	if err != nil || !strings.Contains(out, "counts match") {
		t.Fatalf("migrate --force over the target's own keys: %v\n%s\nkeys afterwards: %v", err, out, secretsOf(t, db))
	}
	if !strings.Contains(out, "removed secrets: 3") {
		t.Errorf("migrate --force did not report the three keys removed:\n%s", out)
	}
	// Said once the source has checked out (ImportOptions.Starting), and
	// before the target is emptied.
	if i, j := strings.Index(out, "replacing everything in postgres database"), strings.Index(out, "removed "); i < 0 || j < i {
		t.Errorf("migrate --force did not say it was replacing everything before it removed anything:\n%s", out)
	}
	if got := replacedContents(t, db, account.EventStoreMigrated); got != want {
		t.Errorf("after migrate --force the database is not the source (kept its own keys?):\n%s\nkeys: %v", storetest.FirstLineDiff(want, got, 2), secretsOf(t, db))
	}

	// bbolt: a new file replaces the target, whatever keys it held.
	dstPath := filepath.Join(t.TempDir(), "target.db")
	dst, err := bolt.Open(dstPath, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillJIT(t, dst, "other-", 3, map[string]string{"session-tokens-key": "the bolt target's own key........"})
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(ctx, "migrate", from, "--to=bolt:"+dstPath); !errors.Is(err, portable.ErrNotEmpty) {
		t.Errorf("migrate into a bolt store that holds records, without --force: %v\n%s", err, out)
	}
	mustCLI(t, "migrate", from, "--to=bolt:"+dstPath, "--force")
	dst, err = bolt.Open(dstPath, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if got := replacedContents(t, dst, account.EventStoreMigrated); got != want {
		t.Errorf("after migrate --force the bolt target is not the source:\n%s", storetest.FirstLineDiff(want, got, 2))
	}
	if _, err := cli(ctx, "migrate", from, "--to=bolt:"+srcPath, "--force"); err == nil {
		t.Error("migrate --force of a bolt file onto itself succeeded")
	}
}

func lastUserOf(t *testing.T, st store.Store) *store.User {
	t.Helper()
	var last *store.User
	err := st.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(u *store.User) error { last = u; return nil })
	})
	if err != nil || last == nil {
		t.Fatalf("last user: %v %v", last, err)
	}
	return last
}

// failingFrom is a store whose Update number failAt and every one after
// it fail, as when the database goes away in the middle of a restore.
type failingFrom struct {
	store.Store
	n      *atomic.Int32
	failAt int32
}

func (s failingFrom) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.n.Add(1) >= s.failAt {
		return errors.New("connection lost")
	}
	return s.Store.Update(ctx, fn)
}

// TestCLIRestoreInterruptedPostgres: a restore into PostgreSQL is written
// in batches, so one that stops part-way leaves part of the backup in the
// database. That used to look like a store: Caddy started on it, and
// `caddy sso` listed and backed it up. Now the database is marked until
// the restore has read it back: every command but restore and migrate
// refuses it, naming what to run, and so does Caddy (the same
// backend.Open; TestDamagedStoreRefusesToStart starts one); `restore
// --force` run again completes it.
func TestCLIRestoreInterruptedPostgres(t *testing.T) {
	ctx := context.Background()
	dsn, db, pgStore, file := backedUpPG(t)
	want := contents(t, db)

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Updates: 1-11 emptying the database, kind by kind until a batch
	// finds none left (users 3, audit events 3, the five other kinds 1
	// each), the first one marking it; 12 the backup's first 500 records
	// (its 3 keys and 497 users); the connection is lost at 13.
	_, err = portable.Import(ctx, failingFrom{db, new(atomic.Int32), 13}, f, portable.ImportOptions{Force: true, BatchSize: 500})
	if !errors.Is(err, portable.ErrPartial) {
		t.Fatalf("the interrupted restore: %v, want ErrPartial", err)
	}
	var left store.Counts
	if err := db.View(ctx, func(tx store.Tx) (err error) { left, err = tx.Counts(); return err }); err != nil {
		t.Fatal(err)
	}
	if left.Users == 0 || left.Users >= 600 {
		t.Fatalf("the interrupted restore left %d users, want part of the backup's 600", left.Users)
	}

	for _, args := range [][]string{
		{"users", "list", pgStore},
		{"audit", pgStore},
		{"backup", filepath.Join(t.TempDir(), "partial.jsonl.gz"), pgStore},
		{"migrate", "--from=postgres:" + dsn, "--to=bolt:" + filepath.Join(t.TempDir(), "copy.db")},
	} {
		out, err := cli(ctx, args...)
		if err == nil || !strings.Contains(err.Error(), "postgres database") ||
			!strings.Contains(err.Error(), "did not finish (import started ") || !strings.Contains(err.Error(), "caddy sso restore --force") {
			t.Errorf("caddy sso %s on the part-restored database: %v\n%s", args[0], err, out)
		}
	}
	if _, err := cli(ctx, "restore", file, pgStore); err == nil || !strings.Contains(err.Error(), "did not finish") ||
		!strings.Contains(err.Error(), "--force replaces everything") {
		t.Errorf("restore without --force into the part-restored database: %v", err)
	}
	mustCLI(t, "restore", "--force", file, pgStore)
	want = sourceContents(want)
	if got := replacedContents(t, db, account.EventStoreRestored); got != want {
		t.Errorf("after restore --force the database is not the backup:\n%s", storetest.FirstLineDiff(want, got, 2))
	}
	if out := mustCLI(t, "users", "list", pgStore); !strings.Contains(out, "sub-0599@example.com") {
		t.Errorf("users list after the restore lacks the last user:\n%s", out)
	}
}

// backupWithOrphanSession is the backup at file with its last session's
// user_id rewritten to a user it does not hold: it reads well (Inspect,
// Verify), but no store takes it, and it fails well after the first
// batch of 500 records, once the store it is written into has changed.
func backupWithOrphanSession(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(l, `{"session":`) {
			last = i
		}
	}
	if last < 500 {
		t.Fatalf("the backup's last session is line %d, not after the first batch", last)
	}
	const field = `"user_id":"`
	i := strings.Index(lines[last], field) + len(field)
	j := strings.Index(lines[last][i:], `"`)
	lines[last] = lines[last][:i] + "no-such-user" + lines[last][i+j:]
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	if _, err := w.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "orphan-session.jsonl.gz")
	if err := os.WriteFile(bad, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := portable.Verify(bytes.NewReader(out.Bytes())); err != nil {
		t.Fatalf("the backup should read well: %v", err)
	}
	return bad
}

// TestCLIFailedRestoreSaysWhatTargetHolds: a restore that fails on a
// record after the first batch said, whatever it had left, that the target
// was incomplete and marked, refused by Caddy and the other commands until
// the same command with --force had emptied it. But a bbolt target is
// built in a scratch file that is removed, and a PostgreSQL target with
// --force is rehearsed in a scratch store first: both are left as they
// were, and open. The scratch store's ErrPartial leaked into the message,
// sending the operator to keep Caddy stopped and to rerun --force (which
// fails the same way, every time). Now those say the target is as it
// was, and only a real partial import (PostgreSQL without --force) says
// incomplete and marked. "replacing everything" is said only once the
// backup has checked out.
func TestCLIFailedRestoreSaysWhatTargetHolds(t *testing.T) {
	ctx := context.Background()
	_, db, pgStore, file := backedUpPG(t)
	bad := backupWithOrphanSession(t, file)
	boltPath := filepath.Join(t.TempDir(), "sso.db")
	mustCLI(t, "restore", file, "--store=bolt:"+boltPath)
	freshDSN, fresh := openPG(t)
	for _, tc := range []struct {
		name    string
		st      store.Store // nil: bbolt at boltPath
		args    []string
		partial bool   // the target holds part of the backup, and is marked
		says    string // what the error says of the target
	}{
		{"bbolt", nil, []string{"restore", bad, "--store=bolt:" + boltPath}, false, "nothing was replaced: " + boltPath + " is as it was"},
		{"PostgreSQL --force", db, []string{"restore", "--force", bad, pgStore}, false, "so the target was not touched"},
		{"PostgreSQL, empty", fresh, []string{"restore", bad, "--store=postgres:" + freshDSN}, true, "incomplete, and marked so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storeArg := tc.args[len(tc.args)-1]
			var before string
			if tc.st != nil {
				before = contents(t, tc.st)
			}
			out, err := cli(ctx, tc.args...)
			if err == nil {
				t.Fatalf("the bad backup restored:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("the failed restore: %v\nwant it to say %q", err, tc.says)
			}
			if strings.Contains(out, "replacing everything") {
				t.Errorf("said it was replacing everything before the backup had checked out:\n%s", out)
			}
			saysPartial := errors.Is(err, portable.ErrPartial) || strings.Contains(err.Error(), "incomplete, and marked") ||
				strings.Contains(err.Error(), "holds part of the source")
			listed, lerr := cli(ctx, "users", "list", storeArg)
			if !tc.partial {
				if saysPartial {
					t.Errorf("a restore that left the target as it was says it holds part of the source:\n%v", err)
				}
				if tc.st != nil && contents(t, tc.st) != before {
					t.Error("the target changed")
				}
				if lerr != nil || !strings.Contains(listed, "600 user(s)") {
					t.Errorf("the target is not the working store it was: %v\n%s", lerr, listed)
				}
				return
			}
			if !saysPartial {
				t.Errorf("a restore that left part of the backup does not say so: %v", err)
			}
			if lerr == nil || !strings.Contains(lerr.Error(), "did not finish") {
				t.Errorf("users list on the part-restored target: %v\n%s", lerr, listed)
			}
		})
	}
}
