package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-sso/caddy-sso/internal/ci"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestRehearsal: on a cold store, an Update that is rehearsed holds the
// write lock without reading a page from disk (WriteHold.Faults), where
// the same Update unrehearsed (NoRehearsal) reads many: the control that
// shows the store was cold, so that the first assertion can fail. The
// cases are what holds the lock in production: the sweep's and the
// last-seen flush's batches, one item per call as store.RunItems hands
// them out (background: always rehearsed), and a sign-in's writes, on a
// store that a first write found cold (foreground: rehearsed while cold).
func TestRehearsal(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const sessions = 4000
	touches := make([]store.SessionTouch, 0, 200)
	for i := 0; i < sessions; i += sessions / cap(touches) {
		touches = append(touches, store.SessionTouch{Hash: sessionHash(i), At: now.Add(time.Minute)})
	}
	bg := store.Background(context.Background())
	cases := []struct {
		name  string
		ctx   context.Context
		write func(store.Tx) error
	}{
		{"sweep", bg, func(tx store.Tx) error {
			gone := 0
			_, _, err := store.RunItems(tx, 200, 0, func(_, k int) (int, error) {
				hashes, err := tx.DeleteExpiredSessions(now, time.Hour, k)
				gone += len(hashes)
				return len(hashes), err
			})
			if err == nil && gone != 200 {
				err = fmt.Errorf("deleted %d sessions, want 200", gone)
			}
			return err
		}},
		{"flush", bg, func(tx store.Tx) error {
			_, _, err := store.RunItems(tx, len(touches), 0, func(from, k int) (int, error) {
				return k, tx.TouchSessions(touches[from : from+k])
			})
			return err
		}},
		{"sign-in", context.Background(), func(tx store.Tx) error {
			// A returning user's new session, and the one the browser
			// came with ended.
			for i := 0; i < 100; i++ {
				s := &store.Session{Hash: sessionHash(sessions + i), UserID: fmt.Sprintf("user-%d", i*7), IdP: "okta",
					Created: now, Expires: now.Add(8 * time.Hour), LastSeen: now}
				if err := tx.PutSession(s); err != nil {
					return err
				}
				if err := tx.DeleteSession(sessionHash(2 + i*37)); err != nil {
					return err
				}
				if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: s.UserID}); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "sso.db")
			makeSessionStore(t, src, now, sessions)
			for _, rehearsed := range []bool{false, true} {
				path := filepath.Join(t.TempDir(), "sso.db")
				copyFile(t, src, path)
				var holds []WriteHold
				db := openCold(t, path, Options{NoRehearsal: !rehearsed, OnWrite: func(w WriteHold) { holds = append(holds, w) }})
				if !store.IsBackground(c.ctx) {
					// The first write reads from disk: the store is cold.
					update(t, db, func(tx store.Tx) error { return tx.DeleteSession(sessionHash(1)) })
					if holds[0].Faults == 0 {
						t.Fatal("the first write on a cold store read nothing from disk")
					}
				}
				holds = nil
				if err := db.Update(c.ctx, c.write); err != nil {
					t.Fatal(err)
				}
				checkIndexes(t, db)
				faults := holds[0].Faults
				switch {
				case rehearsed && faults != 0:
					t.Errorf("the rehearsed %s read %d pages from disk while it held the lock, want none", c.name, faults)
				case !rehearsed && faults == 0:
					t.Errorf("the %s on a cold store read nothing from disk: the store was not cold, so the rehearsed case proves nothing", c.name)
				}
				t.Logf("rehearsed %v: %d major faults while the %s held the lock (%s)", rehearsed, faults, c.name, holds[0].Held)
			}
		})
	}
}

// sessionHash is session i's hash: spread over the key space, as SHA-256
// hashes are.
func sessionHash(i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "token-%d", i))
	return hex.EncodeToString(h[:])
}

// makeSessionStore writes n sessions of n/4 users: every tenth idle for over
// an hour at now, the rest seen a minute before.
func makeSessionStore(t *testing.T, path string, now time.Time, n int) {
	t.Helper()
	db, err := Open(path, Options{})
	must(t, err)
	defer func() { must(t, db.Close()) }()
	update(t, db, func(tx store.Tx) error {
		for u := range n / 4 {
			if err := tx.PutUser(&store.User{ID: fmt.Sprintf("user-%d", u), Email: fmt.Sprintf("u%d@example.com", u)}); err != nil {
				return err
			}
		}
		for i := range n {
			seen := now.Add(-time.Minute)
			if i%10 == 0 {
				seen = now.Add(-2 * time.Hour)
			}
			s := &store.Session{Hash: sessionHash(i), UserID: fmt.Sprintf("user-%d", i%(n/4)), IdP: "okta",
				Created: now.Add(-3 * time.Hour), Expires: now.Add(5 * time.Hour), LastSeen: seen,
				Logout: store.LogoutInfo{Subject: fmt.Sprintf("subject-%d", i%(n/4)), SessionID: fmt.Sprintf("sid-%d", i)}}
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		return nil
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o600))
}

// openCold drops the store file from the page cache (it must be closed:
// the cache keeps pages a process maps) and opens it, closing it when the
// test ends. A file system that keeps files in memory (tmpfs) cannot drop
// them: the test is skipped there, except in CI, which must run it.
func openCold(t *testing.T, path string, opts Options) *DB {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	must(t, f.Sync())
	const fadvDontNeed = 4
	if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
		t.Fatalf("fadvise %s: %v", path, e)
	}
	resident, pages := residentPages(t, f)
	must(t, f.Close())
	if resident > pages/10 {
		ci.Skipf(t, "%d of %d pages of %s stay in memory after FADV_DONTNEED: its file system keeps files in memory (give the test a disk-backed TMPDIR)", resident, pages, path)
	}
	db, err := Open(path, opts)
	must(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// residentPages counts the file's pages in the page cache (mincore on a
// mapping of our own: the cache is the file's, whoever maps it).
func residentPages(t *testing.T, f *os.File) (resident, pages int) {
	t.Helper()
	st, err := f.Stat()
	must(t, err)
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	must(t, err)
	defer func() { _ = syscall.Munmap(data) }()
	vec := make([]byte, (len(data)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}
