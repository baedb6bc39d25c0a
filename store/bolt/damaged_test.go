package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestDamagedFileIsRefused: Open refuses a damaged file with an error that
// names the file and the way out, leaves the file as it was, and neither
// crashes (bbolt itself would fault reading past a truncated file's end)
// nor starts a new store in its place.
func TestDamagedFileIsRefused(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   error
		says   string
	}{
		{"truncated to half", func(t *testing.T, path string) { truncate(t, path, 0.5) }, ErrDamaged, "truncated"},
		{"truncated to one page", func(t *testing.T, path string) { must(t, os.Truncate(path, 4096)) }, ErrDamaged, "truncated"},
		// One page short: the header and its root page are intact, only
		// the size says the file lost its end.
		{"last page cut off", func(t *testing.T, path string) {
			size, err := dataSize(path)
			must(t, err)
			must(t, os.Truncate(path, size-4096))
		}, ErrDamaged, "truncated"},
		{"empty", func(t *testing.T, path string) { must(t, os.Truncate(path, 0)) }, ErrDamaged, "empty"},
		{"not a bbolt file", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, bytes.Repeat([]byte("not a database\n"), 2000), 0o600))
		}, ErrDamaged, "not a bbolt database"},
		{"both headers garbled", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			for _, off := range []int64{16 + 20, 4096 + 16 + 20} {
				_, err := f.WriteAt([]byte{0xff, 0xee, 0xdd}, off)
				must(t, err)
			}
		}, ErrDamaged, "garbled"},
		{"data pages garbled", func(t *testing.T, path string) {
			// Past both meta pages: preflight passes, and bbolt reads
			// garbage as its free-page list and its buckets.
			b, err := os.ReadFile(path)
			must(t, err)
			for i := 2 * 4096; i < len(b); i++ {
				b[i] = byte(i*7 + 3)
			}
			must(t, os.WriteFile(path, b, 0o600))
		}, ErrDamaged, "damaged"},
		{"free-page list garbled", func(t *testing.T, path string) {
			// Close wrote the list; only its page is hit, so bbolt
			// would panic reading it ("invalid freelist page").
			b, err := os.ReadFile(path)
			must(t, err)
			m := newestMeta(b)
			if m.freelist == noFreelist {
				t.Fatal("Close wrote no free-page list")
			}
			off := int(m.freelist)*int(m.pageSize) + 8 // the page's flags
			binary.LittleEndian.PutUint16(b[off:], leafPage)
			must(t, os.WriteFile(path, b, 0o600))
		}, ErrDamaged, "free-page list"},
		{"header names a page size of 0", func(t *testing.T, path string) {
			// Checksums recomputed, so only the page size check catches
			// it (and Open would divide by it).
			b, err := os.ReadFile(path)
			must(t, err)
			for _, off := range []int{0, 4096} {
				meta := b[off+pageHeaderSize:]
				binary.LittleEndian.PutUint32(meta[8:], 0)
				h := fnv.New64a()
				_, _ = h.Write(meta[:metaSumOffset])
				binary.LittleEndian.PutUint64(meta[metaSumOffset:], h.Sum64())
			}
			must(t, os.WriteFile(path, b, 0o600))
		}, ErrDamaged, "page size of 0"},
		{"future schema", func(t *testing.T, path string) {
			withBolt(t, path, func(btx *bolt.Tx) error {
				return btx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion+1)))
			})
		}, ErrNewerSchema, "upgrade caddy-sso"},
		{"another program's bbolt file", func(t *testing.T, path string) {
			must(t, os.Remove(path))
			withBolt(t, path, func(btx *bolt.Tx) error { _, err := btx.CreateBucket([]byte("etcd")); return err })
		}, ErrNotStore, "not a caddy-sso store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sso.db")
			db, err := Open(path, Options{})
			must(t, err)
			putUser(t, db, &store.User{ID: "u", Email: "a@x.io"})
			update(t, db, func(tx store.Tx) error {
				for i := range 2000 {
					if err := tx.Audit(store.Event{Type: store.EventLoginFailed, Reason: strings.Repeat("x", 100)}); err != nil {
						return err
					}
					_ = i
				}
				return nil
			})
			must(t, db.Close())
			tt.damage(t, path)
			before, err := os.ReadFile(path)
			must(t, err)
			for _, ro := range []bool{false, true} {
				db, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					db.Close()
					t.Fatalf("read-only %v: Open of a damaged file succeeded", ro)
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("read-only %v: Open = %v, want %v", ro, err, tt.want)
				}
				// The path names the subtest (t.TempDir), which says
				// "truncated" or "garbled" itself: look for the cause
				// in the rest of the message.
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				for _, s := range []string{tt.says, "caddy sso restore"} {
					if !strings.Contains(strings.ReplaceAll(err.Error(), path, ""), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
			}
			after, err := os.ReadFile(path)
			must(t, err)
			if !bytes.Equal(before, after) {
				t.Error("Open changed the damaged file")
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// truncate cuts the file to frac of its data: a file may be longer than
// its data (bbolt grows it ahead, 16 MiB at a time once mapped large).
func truncate(t *testing.T, path string, frac float64) {
	t.Helper()
	size, err := dataSize(path)
	must(t, err)
	must(t, os.Truncate(path, int64(float64(size)*frac)))
}

func withBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer bdb.Close()
	must(t, bdb.Update(fn))
}

// TestIndexEntryOfAnotherRecordSurvives: a record whose stored value no
// longer owns its index entry (an older build's collision, a repaired
// store) must not take the entry from the record that does own it when
// it changes or goes.
func TestIndexEntryOfAnotherRecordSurvives(t *testing.T) {
	db := openTest(t)
	putUser(t, db, &store.User{ID: "owner", Email: "ada@example.com", Active: true})
	putUser(t, db, &store.User{ID: "stale", Email: "other@example.com", Active: true})
	// Give "stale" the owner's email in its record only, as a store
	// written before the email index was unique could hold.
	must(t, db.bdb.Update(func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketUsers)
		v := bytes.Replace(b.Get([]byte("stale")), []byte("other@example.com"), []byte("ada@example.com"), 1)
		return b.Put([]byte("stale"), v)
	}))
	emailOwner := func() string {
		var id string
		view(t, db, func(tx store.Tx) error {
			u, err := tx.UserByEmail("ada@example.com")
			if err == nil {
				id = u.ID
			}
			return err
		})
		return id
	}
	putUser(t, db, &store.User{ID: "stale", Email: "new@example.com", Active: true})
	if got := emailOwner(); got != "owner" {
		t.Fatalf("after the stale record changed its email, the index names %q, want owner", got)
	}
	must(t, db.bdb.Update(func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketUsers)
		v := bytes.Replace(b.Get([]byte("stale")), []byte("new@example.com"), []byte("ada@example.com"), 1)
		return b.Put([]byte("stale"), v)
	}))
	update(t, db, func(tx store.Tx) error { return tx.DeleteUser("stale") })
	if got := emailOwner(); got != "owner" {
		t.Errorf("after the stale record was deleted, the index names %q, want owner", got)
	}
}

// TestStaleExpiryEntrySparesLiveID: a consumed_until entry that is not its
// ID's current expiry (an older build's, a repaired store's) must not make
// PruneConsumed delete the live ID: it would then be taken again, a
// replayed SAML response or OIDC state accepted.
func TestStaleExpiryEntrySparesLiveID(t *testing.T) {
	db := openTest(t)
	now := time.Now()
	consume := func() bool {
		var fresh bool
		update(t, db, func(tx store.Tx) error {
			var err error
			fresh, err = tx.Consume("state", "live", now.Add(time.Hour))
			return err
		})
		return fresh
	}
	if !consume() {
		t.Fatal("first Consume refused")
	}
	must(t, db.bdb.Update(func(btx *bolt.Tx) error {
		stale := timeKey(encTime(now.Add(-time.Minute)), string(pair("state", "live")))
		return btx.Bucket(bucketConsumedUntil).Put(stale, []byte{})
	}))
	update(t, db, func(tx store.Tx) error {
		n, err := tx.PruneConsumed(now, 10)
		if n != 0 {
			t.Errorf("PruneConsumed counted %d IDs through a stale entry, want 0", n)
		}
		return err
	})
	if consume() {
		t.Error("a live single-use ID was pruned through a stale expiry entry, and taken again")
	}
}

// TestDamagedSessionIndexes: a session index entry that does not lead to
// its own record (damage Check reports) must neither stop the sweep, which
// would then fail at it for good and leave every expired session in place,
// nor hand a back-channel logout for one subject another's session.
func TestDamagedSessionIndexes(t *testing.T) {
	db := openTest(t)
	now := time.Now()
	putUser(t, db, &store.User{ID: "ada", Email: "ada@example.com", Active: true})
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h-ada", UserID: "ada", IdP: "okta", Created: now,
			Expires: now.Add(time.Hour), LastSeen: now, Logout: store.LogoutInfo{Subject: "sub-ada"}})
	})
	orphan := timeKey(encTime(now.Add(-time.Minute)), "h-gone")
	must(t, db.bdb.Update(func(btx *bolt.Tx) error {
		if err := btx.Bucket(bucketSessionExpiry).Put(orphan, []byte{}); err != nil {
			return err
		}
		// Eve's subject index entry naming Ada's session.
		k := pair("okta", string(pair("sub-eve", "h-ada")))
		return btx.Bucket(bucketSessionSubjects).Put(k, []byte{})
	}))

	update(t, db, func(tx store.Tx) error {
		gone, err := tx.DeleteExpiredSessions(now, 0, 10)
		if err != nil || len(gone) != 0 {
			t.Errorf("DeleteExpiredSessions past an orphaned expiry entry = %v, %v; want none, nil", gone, err)
		}
		return nil
	})
	view(t, db, func(stx store.Tx) error {
		if stx.(*tx).bucket(bucketSessionExpiry).Get(orphan) != nil {
			t.Error("the sweep left the orphaned expiry entry, to stop at it again")
		}
		got, err := stx.SessionsBySubject("okta", "sub-eve")
		if err != nil || len(got) != 0 {
			t.Errorf("SessionsBySubject(okta, sub-eve) = %d sessions, %v; want none (the entry names Ada's)", len(got), err)
		}
		return nil
	})
}

// TestSessionLookupsCheckTheRecord: like the subject entry above, a user,
// subject or session ID entry that names a session of another user,
// subject, session ID or IdP (damage, which Check reports) does not make
// a lookup return that session: each entry is checked against the record
// it names, so that a logout for one user never reaches another's.
func TestSessionLookupsCheckTheRecord(t *testing.T) {
	db := checkStore(t) // u1's session h1: IdP entra, subject s1, session ID sid1 (check_test.go)
	now := time.Now()
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h2", UserID: "u2", IdP: "entra", Created: now, Expires: now.Add(time.Hour),
			LastSeen: now, Logout: store.LogoutInfo{Subject: "s2", SessionID: "sid2"}})
	})
	if err := db.bdb.Update(func(b *bolt.Tx) error {
		for _, e := range []struct {
			bucket, key []byte
		}{
			{bucketUserSessions, pair("u2", "h1")},
			{bucketSessionSubjects, pair("entra", string(pair("s2", "h1")))},
			{bucketSessionSIDs, pair("entra", string(pair("sid2", "h1")))},
			{bucketSessionSubjects, pair("okta", string(pair("s1", "h1")))},
		} {
			if err := b.Bucket(e.bucket).Put(e.key, []byte{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	view(t, db, func(tx store.Tx) error {
		lookups := []struct {
			name string
			get  func() ([]*store.Session, error)
			want string
		}{
			{"UserSessions(u2)", func() ([]*store.Session, error) { return tx.UserSessions("u2") }, "h2"},
			{"SessionsBySubject(entra, s2)", func() ([]*store.Session, error) { return tx.SessionsBySubject("entra", "s2") }, "h2"},
			{"SessionsBySessionID(entra, sid2)", func() ([]*store.Session, error) { return tx.SessionsBySessionID("entra", "sid2") }, "h2"},
			{"SessionsBySubject(okta, s1)", func() ([]*store.Session, error) { return tx.SessionsBySubject("okta", "s1") }, ""},
		}
		for _, l := range lookups {
			ss, err := l.get()
			var got []string
			for _, s := range ss {
				got = append(got, s.Hash)
			}
			if err != nil || strings.Join(got, ",") != l.want {
				t.Errorf("%s = %v, %v; want [%s]", l.name, got, err, l.want)
			}
		}
		return nil
	})
}
