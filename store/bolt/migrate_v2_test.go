package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-sso/caddy-sso/store"
)

// v2File is what a schema 2 build left: records as it wrote them (JSON
// sessions with the ID token inside, lower-cased index keys).
type v2File struct {
	users    []store.User
	groups   []store.Group
	sessions map[string]v2Session
	consumed map[string]time.Time // pair(kind, id) -> until
	events   []store.Event
}

// writeV2 writes f the way a schema 2 build laid it out, including its
// strings.ToLower keys and the session_name_ids index.
func writeV2(t *testing.T, path string, f v2File) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(btx *bolt.Tx) error {
		meta, err := btx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte("2")); err != nil {
			return err
		}
		for _, name := range append(append(v1Buckets(), v2Buckets()...), bucketSessionNameIDs) {
			if _, err := btx.CreateBucket(name); err != nil {
				return err
			}
		}
		put := func(b []byte, k []byte, v []byte) {
			if err == nil {
				err = btx.Bucket(b).Put(k, v)
			}
		}
		for _, u := range f.users {
			data, _ := json.Marshal(u)
			put(bucketUsers, []byte(u.ID), data)
			for _, l := range u.Links {
				put(bucketLinks, linkKey(l), []byte(u.ID))
			}
			if u.Email != "" {
				put(bucketEmails, []byte(strings.ToLower(u.Email)), []byte(u.ID))
			}
			if u.UserName != "" {
				put(bucketUserNames, []byte(strings.ToLower(u.UserName)), []byte(u.ID))
			}
			put(bucketIdPUsers, pair(u.IdP, u.ID), []byte{})
		}
		for _, g := range f.groups {
			data, _ := json.Marshal(g)
			put(bucketGroups, []byte(g.ID), data)
			put(bucketGroupNames, pair(g.IdP, strings.ToLower(g.DisplayName)), []byte(g.ID))
		}
		for hash, s := range f.sessions {
			data, _ := json.Marshal(s)
			put(bucketSessions, []byte(hash), data)
			put(bucketUserSessions, pair(s.UserID, hash), []byte{})
			if s.Logout.NameID != "" {
				put(bucketSessionNameIDs, pair(s.IdP, string(pair(s.Logout.NameID, hash))), []byte{})
			}
		}
		for k, until := range f.consumed {
			put(bucketConsumed, []byte(k), u64(uint64(until.UnixNano())))
		}
		for _, e := range f.events {
			data, _ := json.Marshal(e)
			put(bucketAudit, u64(e.Seq), data)
			if e.UserID != "" {
				put(bucketAuditByUser, auditUserKey(e.UserID, e.Seq), []byte{})
			}
		}
		if err == nil {
			err = btx.Bucket(bucketAudit).SetSequence(uint64(len(f.events)))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateV2(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f := v2File{
		users: []store.User{
			{ID: "u1", Email: "Ada@X.io", UserName: "STRASSE", IdP: "entra", Active: true, Groups: []string{"Ops"},
				Links: []store.Link{{IdP: "entra", Subject: "e1"}}},
			// Distinct under strings.ToLower, one name under FoldName: the
			// first in ID order keeps the index entry.
			{ID: "u2", Email: "bob@x.io", UserName: "straße", IdP: "entra", Active: true,
				Links: []store.Link{{IdP: "entra", Subject: "e2"}}},
		},
		groups:   []store.Group{{ID: "g1", IdP: "entra", DisplayName: "Ops", Members: []string{"u1"}}},
		sessions: map[string]v2Session{},
		consumed: map[string]time.Time{
			string(pair("state", "old")): now.Add(-time.Hour),
			string(pair("saml", "new")):  now.Add(time.Hour),
		},
	}
	oidc := v2Session{UserID: "u1", IdP: "okta", Created: now.Add(-time.Hour), Expires: now.Add(7 * time.Hour), LastSeen: now}
	oidc.Logout.IDToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZGEifQ.sig"
	saml := v2Session{UserID: "u2", IdP: "entra", Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Minute), LastSeen: now.Add(-time.Hour)}
	saml.Logout.NameID, saml.Logout.NameIDFormat, saml.Logout.SessionIndex = "bob@x.io", "urn:email", "idx-9"
	f.sessions["h-oidc"], f.sessions["h-saml"] = oidc, saml
	// Enough sessions for several upgrade transactions.
	for i := range migrateChunk + 3 {
		f.sessions[fmt.Sprintf("h-%06d", i)] = v2Session{UserID: "u1", IdP: "okta", Created: now, Expires: now.Add(time.Duration(i-1) * time.Second)}
	}
	for i := 1; i <= 3; i++ {
		f.events = append(f.events, store.Event{Seq: uint64(i), Time: now, Type: store.EventLoginSucceeded, UserID: "u1"})
	}
	path := filepath.Join(t.TempDir(), "sso.db")
	writeV2(t, path, f)

	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrOldSchema) {
		t.Fatalf("read-only open of a v2 file: %v, want ErrOldSchema", err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		s, err := tx.Session("h-saml")
		if err != nil {
			return err
		}
		want := store.Session{Hash: "h-saml", UserID: "u2", IdP: "entra", Created: saml.Created, Expires: saml.Expires, LastSeen: saml.LastSeen,
			Logout: store.LogoutInfo{Subject: "bob@x.io", SubjectFormat: "urn:email", SessionID: "idx-9"}}
		sameJSON(t, "converted SAML session", &want, s)
		if got, _ := tx.SessionsBySubject("entra", "bob@x.io"); len(got) != 1 {
			t.Errorf("SessionsBySubject after upgrade: %d sessions", len(got))
		}
		if got, _ := tx.SessionsBySessionID("entra", "idx-9"); len(got) != 1 {
			t.Errorf("SessionsBySessionID after upgrade: %d sessions", len(got))
		}
		blob, err := tx.SessionTokens("h-oidc")
		if err != nil || !bytes.Equal(blob, store.PlainIDTokenBlob(oidc.Logout.IDToken)) {
			t.Errorf("ID token of the OIDC session: %q, %v", blob, err)
		}
		if blob, err := tx.SessionTokens("h-saml"); blob != nil || err != nil {
			t.Errorf("tokens of a session without an ID token: %q, %v", blob, err)
		}
		for _, q := range []struct{ name, want string }{{"strasse", "u1"}, {"STRAßE", "u1"}} {
			if u, err := tx.UserByUserName(q.name); err != nil || u.ID != q.want {
				t.Errorf("UserByUserName(%q) = %v, %v", q.name, u, err)
			}
		}
		if u, err := tx.UserByEmail("ADA@x.IO"); err != nil || u.ID != "u1" {
			t.Errorf("UserByEmail after upgrade: %v", err)
		}
		if g, err := tx.GroupByName("entra", "OPS"); err != nil || g.ID != "g1" {
			t.Errorf("GroupByName after upgrade: %v", err)
		}
		c, err := tx.Counts()
		if err != nil {
			return err
		}
		if want := (store.Counts{Users: 2, Groups: 1, Sessions: len(f.sessions), AuditEvents: 3}); c != want {
			t.Errorf("Counts = %+v, want %+v", c, want)
		}
		return nil
	})
	// The upgraded indexes work for housekeeping.
	update(t, db, func(tx store.Tx) error {
		gone, err := tx.DeleteExpiredSessions(now, 0, 10)
		if err != nil {
			return err
		}
		if !slices.Contains(gone, "h-saml") || !slices.Contains(gone, "h-000000") || len(gone) != 2 {
			t.Errorf("expired after upgrade: %q", gone)
		}
		if n, err := tx.PruneConsumed(now, 10); err != nil || n != 1 {
			t.Errorf("PruneConsumed after upgrade = %d, %v", n, err)
		}
		return tx.Audit(store.Event{Type: store.EventUserUpdated})
	})
	view(t, db, func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{After: 3})
		if err != nil || len(ev) != 1 || ev[0].Seq != 4 {
			t.Errorf("audit numbering after upgrade: %+v, %v", ev, err)
		}
		return nil
	})
	checkIndexes(t, db)
}

// An upgrade interrupted after its first transaction leaves a file that a
// schema 2 build refuses (schema 3) and that the next open finishes.
func TestMigrateV2Interrupted(t *testing.T) {
	now := time.Now().UTC()
	s := v2Session{UserID: "u1", IdP: "okta", Created: now, Expires: now.Add(time.Hour), LastSeen: now}
	s.Logout.IDToken = "tok"
	path := filepath.Join(t.TempDir(), "sso.db")
	writeV2(t, path, v2File{
		users:    []store.User{{ID: "u1", Email: "a@x.io", Active: true}},
		sessions: map[string]v2Session{"h1": s, "h2": s},
	})
	// Convert one session by hand and mark the upgrade as running, as an
	// upgrade killed mid-way leaves it.
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(btx *bolt.Tx) error {
		meta := btx.Bucket(bucketMeta)
		if err := meta.Put(keySchema, []byte("3")); err != nil {
			return err
		}
		if err := meta.Put(keyUpgrading, []byte("3")); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketSessionSeen, bucketSessionTokens} {
			if _, err := btx.CreateBucket(b); err != nil {
				return err
			}
		}
		t := &tx{btx: btx, writable: true}
		_, _, err := t.upgradeSession([]byte("h1"), btx.Bucket(bucketSessions).Get([]byte("h1")))
		return err
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrOldSchema) {
		t.Fatalf("read-only open mid-upgrade: %v, want ErrOldSchema", err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		for _, h := range []string{"h1", "h2"} {
			blob, err := tx.SessionTokens(h)
			if err != nil || !bytes.Equal(blob, store.PlainIDTokenBlob("tok")) {
				t.Errorf("%s tokens = %q, %v", h, blob, err)
			}
		}
		return nil
	})
	_ = db.bdb.View(func(btx *bolt.Tx) error {
		if v := btx.Bucket(bucketMeta).Get(keyUpgrading); v != nil {
			t.Errorf("upgrade mark left: %q", v)
		}
		return nil
	})
}

// TestMigrateV2OddRecords: the upgrade indexes an audit event under its
// user only when it has one (a failed sign-in has none), and drops a
// single-use ID whose expiry does not decode (it could never be pruned),
// so the upgraded store checks sound.
func TestMigrateV2OddRecords(t *testing.T) {
	now := time.Now().UTC()
	path := filepath.Join(t.TempDir(), "sso.db")
	writeV2(t, path, v2File{
		users:    []store.User{{ID: "u1", Email: "a@x.io", Active: true}},
		sessions: map[string]v2Session{},
		events: []store.Event{
			{Seq: 1, Time: now, Type: store.EventLoginSucceeded, UserID: "u1"},
			{Seq: 2, Time: now, Type: store.EventLoginFailed, Reason: "bad signature"},
		},
	})
	bad := pair("state", "garbled")
	withBolt(t, path, func(btx *bolt.Tx) error { return btx.Bucket(bucketConsumed).Put(bad, []byte("junk")) })
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkOK(t, db)
	_ = db.bdb.View(func(btx *bolt.Tx) error {
		if k, _ := btx.Bucket(bucketAuditByUser).Cursor().Seek(pair("", "")); k != nil && bytes.HasPrefix(k, pair("", "")) {
			t.Errorf("audit_by_user holds %x, an entry for an event without a user", k)
		}
		if v := btx.Bucket(bucketConsumed).Get(bad); v != nil {
			t.Errorf("the single-use ID with an unreadable expiry %q was kept", v)
		}
		return nil
	})
}

// TestReindexInterruptedAtCurrentSchema: reindex's first transaction
// writes the current schema with the upgrading mark and empties every
// index; a kill before its last leaves such a file. The next read-write
// open must rebuild the indexes (or users are no longer found by link or
// email, and sign-in creates duplicates) and drop the mark.
func TestReindexInterruptedAtCurrentSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Email: "a@x.io", IdP: "okta", Links: []store.Link{{IdP: "okta", Subject: "a"}}}
	putUser(t, db, u)
	// The state after reindex's first transaction.
	if err := db.bdb.Update(func(btx *bolt.Tx) error {
		if err := btx.Bucket(bucketMeta).Put(keyUpgrading, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		for _, name := range derivedBuckets() {
			if err := btx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := btx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrOldSchema) {
		t.Errorf("read-only open mid-upgrade: %v, want ErrOldSchema", err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkIndexes(t, db)
	checkOK(t, db)
	view(t, db, func(tx store.Tx) error {
		if got, err := tx.UserByLink("okta", "a"); err != nil || got.ID != u.ID {
			t.Errorf("UserByLink after the upgrade finished = %v, %v; want %s", got, err, u.ID)
		}
		return nil
	})
}

// A v3 file that lost an index bucket gets it rebuilt from the records.
func TestMissingIndexIsRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sso.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Email: "a@x.io", Links: []store.Link{{IdP: "okta", Subject: "a"}}}
	putUser(t, db, u)
	update(t, db, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h1", UserID: u.ID, IdP: "okta", Expires: time.Now().Add(time.Hour),
			Logout: store.LogoutInfo{Subject: "a"}})
	})
	if err := db.bdb.Update(func(btx *bolt.Tx) error {
		if err := btx.DeleteBucket(bucketSessionExpiry); err != nil {
			return err
		}
		return btx.DeleteBucket(bucketLinks)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "caddy sso restore") {
		t.Errorf("read-only open of a file without an index: %v", err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkIndexes(t, db)
	view(t, db, func(tx store.Tx) error {
		_, err := tx.UserByLink("okta", "a")
		return err
	})
	_ = binary.BigEndian
}
