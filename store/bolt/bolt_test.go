package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "sso.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Path() != path {
		t.Errorf("Path() = %q, want %q", db.Path(), path)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^c.mode != 0 {
			t.Errorf("%s mode %v, want at most %v", c.path, got, c.mode)
		}
	}
}

// TestSecondOpenWithDefaultTimeoutGivesUp: with the zero Options a second
// Caddy process on the same file waits DefaultLockTimeout and fails with
// ErrLocked, rather than wait for the lock for ever (bbolt's Timeout 0).
func TestSecondOpenWithDefaultTimeoutGivesUp(t *testing.T) {
	db := openTest(t)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		db2, err := Open(db.Path(), Options{ReadOnly: true})
		if err == nil {
			db2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Open = %v, want ErrLocked", err)
		}
		if waited := time.Since(start); waited < DefaultLockTimeout/2 {
			t.Errorf("gave up after %v, want about DefaultLockTimeout (%v)", waited, DefaultLockTimeout)
		}
	case <-time.After(3 * DefaultLockTimeout):
		// Release the lock so that the waiting Open ends with the test.
		db.Close()
		<-done
		t.Fatalf("second Open with the zero Options still waited for the lock after %v", 3*DefaultLockTimeout)
	}
}

func TestSecondOpenFailsWithLockError(t *testing.T) {
	db := openTest(t)
	for _, ro := range []bool{false, true} {
		start := time.Now()
		_, err := Open(db.Path(), Options{LockTimeout: 100 * time.Millisecond, ReadOnly: ro})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("read-only=%v: err = %v, want ErrLocked", ro, err)
		}
		want := fmt.Sprintf("store %s is locked by another process", db.Path())
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("waited %v despite a 100ms timeout", waited)
		}
	}
}

func TestSchemaChecks(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*bolt.Tx) error
		want  error
	}{
		{"newer schema", func(btx *bolt.Tx) error {
			return btx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion+1)))
		}, ErrNewerSchema},
		{"garbage schema", func(btx *bolt.Tx) error {
			return btx.Bucket(bucketMeta).Put(keySchema, []byte("x"))
		}, ErrNotStore},
		// Not a fresh file (version 0) to lay out anew over its records.
		{"schema 0", func(btx *bolt.Tx) error {
			return btx.Bucket(bucketMeta).Put(keySchema, []byte("0"))
		}, ErrNotStore},
		{"foreign file", func(btx *bolt.Tx) error {
			if err := btx.DeleteBucket(bucketMeta); err != nil {
				return err
			}
			_, err := btx.CreateBucket([]byte("something-else"))
			return err
		}, ErrNotStore},
		{"missing data bucket is recreated", func(btx *bolt.Tx) error {
			return btx.DeleteBucket(bucketAuditByUser)
		}, nil},
		{"missing version 2 index bucket is recreated", func(btx *bolt.Tx) error {
			return btx.DeleteBucket(bucketUserNames)
		}, nil},
	}
	// A bucket that holds records cannot be rebuilt: recreating it empty
	// would lose its records (users, audit numbers, tombstones) silently.
	for _, name := range primaryBuckets() {
		tests = append(tests, struct {
			name  string
			setup func(*bolt.Tx) error
			want  error
		}{"missing record bucket " + string(name) + " is damage", func(btx *bolt.Tx) error { return btx.DeleteBucket(name) }, ErrDamaged})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sso.db")
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.bdb.Update(tt.setup); err != nil {
				t.Fatal(err)
			}
			db.Close()
			db, err = Open(path, Options{})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("reopen: %v", err)
				}
				db.Close()
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("reopen err = %v, want %v", err, tt.want)
			}
			if errors.Is(tt.want, ErrNewerSchema) && !strings.Contains(err.Error(), "upgrade caddy-sso") ||
				errors.Is(tt.want, ErrDamaged) && !strings.Contains(err.Error(), "caddy sso restore") {
				t.Errorf("error %q does not tell the operator what to do", err)
			}
		})
	}
}

func TestReadOnlyOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	if _, err := Open(path, Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond}); err == nil {
		t.Fatal("read-only Open of a missing file succeeded")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Email: "a@x.io"}
	putUser(t, db, u)
	db.Close()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	view(t, ro, func(tx store.Tx) error {
		_, err := tx.User(u.ID)
		return err
	})
	if err := ro.Update(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Update on read-only store: %v, want ErrReadOnly", err)
	}
}

func TestConcurrentUpdatesAllLand(t *testing.T) {
	db := openTest(t)
	const n = 50
	txBefore := commitID(t, db)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- db.Update(context.Background(), func(tx store.Tx) error {
				u := &store.User{
					Email: fmt.Sprintf("u%d@x.io", i),
					Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint(i)}},
				}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				return tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d concurrent Updates took %d commits", n, commitID(t, db)-txBefore)
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		users := 0
		if err := tx.ForEachUser("", func(*store.User) error { users++; return nil }); err != nil {
			return err
		}
		if users != n {
			t.Errorf("users = %d, want %d", users, n)
		}
		for i := range n {
			u, err := tx.UserByLink("okta", fmt.Sprint(i))
			if err != nil {
				t.Errorf("user %d: %v", i, err)
				continue
			}
			ev, err := tx.AuditEvents(store.AuditQuery{UserID: u.ID})
			if err != nil || len(ev) != 1 {
				t.Errorf("audit of user %d: %v %v", i, ev, err)
			}
		}
		ev, err := tx.AuditEvents(store.AuditQuery{Limit: 1000})
		if err != nil {
			return err
		}
		if len(ev) != n {
			t.Errorf("audit events = %d, want %d", len(ev), n)
		}
		for i, e := range ev {
			if e.Seq != uint64(i+1) {
				t.Errorf("event %d has seq %d", i, e.Seq)
			}
		}
		return nil
	})
}

// commitID returns bbolt's transaction ID, which grows by one per commit.
func commitID(t testing.TB, db *DB) int {
	t.Helper()
	var id int
	if err := db.bdb.View(func(btx *bolt.Tx) error { id = btx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Email: "a@x.io", FirstName: "A", Links: []store.Link{{IdP: "okta", Subject: "a"}}, Active: true}
	putUser(t, db, u)
	var secret []byte
	update(t, db, func(tx store.Tx) error {
		if ok, err := tx.Consume("saml", "id-1", time.Now().Add(time.Hour)); err != nil || !ok {
			return fmt.Errorf("consume: %v %v", ok, err)
		}
		if err := tx.PutSession(&store.Session{Hash: "h1", UserID: u.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
			return err
		}
		if secret, err = tx.Secret("cookie", 32); err != nil {
			return err
		}
		for range 3 {
			if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: u.ID}); err != nil {
				return err
			}
		}
		return nil
	})
	before := snapshot(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sameSnapshot(t, before, snapshot(t, db))
	update(t, db, func(tx store.Tx) error {
		got, err := tx.UserByLink("okta", "a")
		if err != nil {
			return err
		}
		sameJSON(t, "user", u, got)
		if ok, err := tx.Consume("saml", "id-1", time.Now().Add(time.Hour)); err != nil || ok {
			t.Errorf("replayed ID accepted after reopen: %v %v", ok, err)
		}
		s, err := tx.Secret("cookie", 32)
		if err != nil || !bytes.Equal(s, secret) {
			t.Errorf("secret changed across reopen: %v", err)
		}
		if _, err := tx.Session("h1"); err != nil {
			t.Errorf("session lost: %v", err)
		}
		if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded}); err != nil {
			return err
		}
		ev, err := tx.AuditEvents(store.AuditQuery{After: 3})
		if err != nil {
			return err
		}
		if len(ev) != 1 || ev[0].Seq != 4 {
			t.Errorf("audit seq did not continue: %+v", ev)
		}
		return nil
	})
}

func TestBackupOpensWithEqualContent(t *testing.T) {
	db := openTest(t)
	for i := range 20 {
		u := &store.User{Email: fmt.Sprintf("u%d@x.io", i), Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint(i)}}}
		putUser(t, db, u)
		update(t, db, func(tx store.Tx) error {
			if err := tx.PutSession(&store.Session{Hash: fmt.Sprint("h", i), UserID: u.ID}); err != nil {
				return err
			}
			return tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID})
		})
	}
	want := snapshot(t, db)

	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Backup(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("Backup reported %d bytes, file has %d", n, fi.Size())
	}
	cp, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	sameSnapshot(t, want, snapshot(t, cp))
	checkIndexes(t, cp)
}

// Close leaves the free-page list written, so the next Open need not read
// the whole file to rebuild it. bbolt, opened with its defaults, writes the
// list itself (a commit) when it finds none.
func TestCloseWritesFreelist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	putUser(t, db, &store.User{ID: "u"})
	update(t, db, func(tx store.Tx) error { return tx.DeleteUser("u") }) // frees pages
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	txid := func(bdb *bolt.DB) (id int) {
		_ = bdb.View(func(btx *bolt.Tx) error { id = btx.ID(); return nil })
		return id
	}
	ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	before := txid(ro)
	ro.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if after := txid(bdb); after != before {
		t.Errorf("bbolt found no free-page list after Close (it committed %d transactions to write one)", after-before)
	}
}

// The backup holds live data only: after most of the store was deleted it
// is much smaller than the file, which keeps its free pages.
func TestBackupIsCompact(t *testing.T) {
	db := openTest(t)
	update(t, db, func(tx store.Tx) error {
		for i := range 3000 {
			u := &store.User{ID: fmt.Sprintf("u%04d", i), Email: fmt.Sprintf("u%d@x.io", i), FirstName: strings.Repeat("x", 200)}
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		for i := range 2900 {
			if err := tx.DeleteUser(fmt.Sprintf("u%04d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	want := snapshot(t, db)
	path := filepath.Join(t.TempDir(), "backup.db")
	n, err := db.BackupTo(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(db.Path())
	if n*4 > fi.Size() {
		t.Errorf("backup is %d bytes of a %d-byte file with 3%% of its data left", n, fi.Size())
	}
	if _, err := db.BackupTo(path); err == nil {
		t.Error("BackupTo overwrote an existing file")
	}
	cp, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	sameSnapshot(t, want, snapshot(t, cp))
	checkIndexes(t, cp)
}

// TestReturningUserWritesOnlyTheRecord: re-putting a user whose keys did
// not change (a returning user's sign-in updates LastLogin) must leave the
// five key indexes untouched. Each bbolt Put dirties a leaf and its
// branches, and on a store of a few thousand users the unchanged index
// entries more than doubled the pages a sign-in commit writes.
func TestReturningUserWritesOnlyTheRecord(t *testing.T) {
	db := openTest(t)
	var last *store.User
	update(t, db, func(tx store.Tx) error {
		for i := range 3000 {
			last = &store.User{Email: fmt.Sprintf("user%d@example.com", i), Active: true, Source: store.SourceJIT,
				Links:    []store.Link{{IdP: "okta", Subject: fmt.Sprintf("00u%08d", i)}},
				UserName: fmt.Sprintf("user%d@example.com", i), IdP: "okta", ExternalID: fmt.Sprintf("ext%08d", i)}
			if err := tx.PutUser(last); err != nil {
				return err
			}
		}
		return nil
	})
	var depth int
	if err := db.bdb.View(func(btx *bolt.Tx) error {
		depth = btx.Bucket(bucketUsers).Stats().Depth
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := db.bdb.Stats()
	last.LastLogin = time.Now()
	putUser(t, db, last)
	after := db.bdb.Stats()
	written := after.TxStats.GetWrite() - before.TxStats.GetWrite()
	// The users bucket's path, the root bucket's page, the meta page.
	if want := int64(depth + 2); written > want {
		t.Errorf("updating LastLogin wrote %d pages; the users bucket is %d deep, so at most %d", written, depth, want)
	}
	view(t, db, func(tx store.Tx) error {
		got, err := tx.User(last.ID)
		if err == nil && !got.LastLogin.Equal(last.LastLogin) {
			t.Errorf("LastLogin = %v, want %v", got.LastLogin, last.LastLogin)
		}
		return err
	})
	for _, lookup := range []func(tx store.Tx) (*store.User, error){
		func(tx store.Tx) (*store.User, error) { return tx.UserByEmail("user2999@example.com") },
		func(tx store.Tx) (*store.User, error) { return tx.UserByLink("okta", "00u00002999") },
		func(tx store.Tx) (*store.User, error) { return tx.UserByUserName("user2999@example.com") },
		func(tx store.Tx) (*store.User, error) { return tx.UserByExternalID("okta", "ext00002999") },
	} {
		view(t, db, func(tx store.Tx) error {
			u, err := lookup(tx)
			if err != nil {
				return err
			}
			if u.ID != last.ID {
				t.Errorf("index names %s, want %s", u.ID, last.ID)
			}
			return nil
		})
	}
}
