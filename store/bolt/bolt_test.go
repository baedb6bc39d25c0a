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
		{"missing version 2 bucket is recreated", func(btx *bolt.Tx) error {
			return btx.DeleteBucket(bucketTombstones)
		}, nil},
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
			if errors.Is(tt.want, ErrNewerSchema) && !strings.Contains(err.Error(), "upgrade caddy-sso") {
				t.Errorf("error %q does not tell the operator what to do", err)
			}
		})
	}
}

func TestContextCancelledBeforeStart(t *testing.T) {
	db := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	fn := func(store.Tx) error { ran = true; return nil }
	if err := db.Update(ctx, fn); !errors.Is(err, context.Canceled) {
		t.Errorf("Update: %v", err)
	}
	if err := db.View(ctx, fn); !errors.Is(err, context.Canceled) {
		t.Errorf("View: %v", err)
	}
	if ran {
		t.Error("fn ran on a cancelled context")
	}
}

func TestWritesInViewAreReadOnly(t *testing.T) {
	db := openTest(t)
	u := &store.User{Email: "a@x.io"}
	putUser(t, db, u)
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h", UserID: u.ID, Expires: time.Now().Add(time.Hour)})
	})
	before := snapshot(t, db)
	writes := []struct {
		name string
		fn   func(store.Tx) error
	}{
		{"PutUser", func(tx store.Tx) error { return tx.PutUser(&store.User{}) }},
		{"DeleteUser", func(tx store.Tx) error { return tx.DeleteUser(u.ID) }},
		{"PutSession", func(tx store.Tx) error { return tx.PutSession(&store.Session{Hash: "x", UserID: u.ID}) }},
		{"DeleteSession", func(tx store.Tx) error { return tx.DeleteSession("h") }},
		{"DeleteUserSessions", func(tx store.Tx) error { _, err := tx.DeleteUserSessions(u.ID); return err }},
		{"DeleteExpiredSessions", func(tx store.Tx) error { _, err := tx.DeleteExpiredSessions(time.Now(), 0, 10); return err }},
		{"Consume", func(tx store.Tx) error { _, err := tx.Consume("k", "i", time.Now().Add(time.Hour)); return err }},
		{"PruneConsumed", func(tx store.Tx) error { _, err := tx.PruneConsumed(time.Now(), 10); return err }},
		{"Secret (new)", func(tx store.Tx) error { _, err := tx.Secret("new", 32); return err }},
		{"Audit", func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventLoginFailed}) }},
		{"PutGroup", func(tx store.Tx) error { return tx.PutGroup(&store.Group{DisplayName: "g"}) }},
		{"DeleteGroup", func(tx store.Tx) error { return tx.DeleteGroup("g") }},
		{"PutTombstone", func(tx store.Tx) error { return tx.PutTombstone(&store.Tombstone{IdP: "okta", Subject: "s"}) }},
		{"DeleteTombstone", func(tx store.Tx) error { return tx.DeleteTombstone("okta", "s") }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			err := db.View(t.Context(), w.fn)
			if !errors.Is(err, store.ErrReadOnly) {
				t.Errorf("err = %v, want ErrReadOnly", err)
			}
		})
	}
	sameSnapshot(t, before, snapshot(t, db))
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

func TestErrorInUpdateRollsBack(t *testing.T) {
	db := openTest(t)
	keep := &store.User{Email: "keep@x.io", Links: []store.Link{{IdP: "okta", Subject: "keep"}}}
	putUser(t, db, keep)
	update(t, db, func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventUserCreated}) })
	before := snapshot(t, db)

	boom := errors.New("boom")
	err := db.Update(t.Context(), func(tx store.Tx) error {
		u := &store.User{Email: "gone@x.io", Links: []store.Link{{IdP: "okta", Subject: "gone"}}}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		keep.FirstName = "changed"
		if err := tx.PutUser(keep); err != nil {
			return err
		}
		if err := tx.PutSession(&store.Session{Hash: "h", UserID: u.ID}); err != nil {
			return err
		}
		if _, err := tx.Consume("state", "s", time.Now().Add(time.Hour)); err != nil {
			return err
		}
		if _, err := tx.Secret("k", 16); err != nil {
			return err
		}
		if err := tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID}); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update err = %v, want the fn's own error unwrapped", err)
	}
	sameSnapshot(t, before, snapshot(t, db))

	// The audit sequence number the failed Update drew is given back.
	update(t, db, func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventUserCreated}) })
	view(t, db, func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		if len(ev) != 2 || ev[1].Seq != 2 {
			t.Errorf("audit after rollback: %+v", ev)
		}
		return nil
	})
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

func TestConsumeAndPrune(t *testing.T) {
	db := openTest(t)
	now := time.Now()
	steps := []struct {
		kind, id string
		until    time.Time
		want     bool
	}{
		{"state", "a", now.Add(time.Hour), true},
		{"state", "a", now.Add(time.Hour), false},
		{"saml", "a", now.Add(time.Hour), true},  // kinds are separate namespaces
		{"sta", "tea", now.Add(time.Hour), true}, // no concatenation clash with ("state","a")
		{"state", "old", now.Add(-time.Second), true},
		{"state", "old", now.Add(time.Hour), true}, // expired entry is overwritten
		{"state", "old", now.Add(time.Hour), false},
		{"state", "gone", now.Add(-time.Minute), true},
	}
	for i, s := range steps {
		update(t, db, func(tx store.Tx) error {
			got, err := tx.Consume(s.kind, s.id, s.until)
			if err != nil {
				return err
			}
			if got != s.want {
				t.Errorf("step %d Consume(%s,%s) = %v, want %v", i, s.kind, s.id, got, s.want)
			}
			return nil
		})
	}
	update(t, db, func(tx store.Tx) error {
		n, err := tx.PruneConsumed(now, 10)
		if err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("pruned %d, want 1", n)
		}
		if n, _ := tx.PruneConsumed(now.Add(2*time.Hour), 10); n != 4 {
			t.Errorf("pruned %d later, want 4", n)
		}
		return nil
	})
	// The replay guard the IdPs use works on this backend: one
	// transaction per ID, first use wins.
	guard := store.ReplayGuard{Store: db}
	first, err := guard.ConsumeOnce(t.Context(), "state", "x", now.Add(time.Hour))
	again, err2 := guard.ConsumeOnce(t.Context(), "state", "x", now.Add(time.Hour))
	if err != nil || err2 != nil || !first || again {
		t.Errorf("ReplayGuard.ConsumeOnce: %v %v, %v %v", first, err, again, err2)
	}
}

func TestSecret(t *testing.T) {
	db := openTest(t)
	var a, b []byte
	update(t, db, func(tx store.Tx) (err error) {
		a, err = tx.Secret("hmac", 32)
		return err
	})
	view(t, db, func(tx store.Tx) (err error) {
		b, err = tx.Secret("hmac", 32)
		return err
	})
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Errorf("secret not stable: %x vs %x", a, b)
	}
	if err := db.View(t.Context(), func(tx store.Tx) error {
		_, err := tx.Secret("missing", 32)
		return err
	}); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("creating a secret in View: %v", err)
	}
}

// A failing fn inside a bbolt batch makes bbolt roll the batch back and
// re-run the others: the failures must leave nothing, the rest must land.
func TestConcurrentUpdatesWithFailures(t *testing.T) {
	db := openTest(t)
	const n = 40
	boom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i] = db.Update(context.Background(), func(tx store.Tx) error {
				u := &store.User{Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint(i)}}}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				if err := tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID}); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom
				}
				return nil
			})
		})
	}
	wg.Wait()
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		for i, err := range results {
			_, lookErr := tx.UserByLink("okta", fmt.Sprint(i))
			switch {
			case i%3 == 0 && (err != boom || !isNotFound(lookErr)):
				t.Errorf("%d: failing Update returned %v, lookup %v", i, err, lookErr)
			case i%3 != 0 && (err != nil || lookErr != nil):
				t.Errorf("%d: Update %v, lookup %v", i, err, lookErr)
			}
		}
		ev, err := tx.AuditEvents(store.AuditQuery{Limit: 1000})
		if err != nil {
			return err
		}
		if want := n - (n+2)/3; len(ev) != want {
			t.Errorf("%d audit events, want %d", len(ev), want)
		}
		return nil
	})
}
