package bolt

import (
	"slices"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func hashesOf(ss []*store.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Hash)
	}
	slices.Sort(out)
	return out
}

func bySubject(t testing.TB, db *DB, idp, nameID string) []string {
	t.Helper()
	var got []string
	view(t, db, func(tx store.Tx) error {
		ss, err := tx.SessionsBySubject(idp, nameID)
		got = hashesOf(ss)
		return err
	})
	return got
}

func TestSessionsBySubject(t *testing.T) {
	db := openTest(t)
	alice := &store.User{Email: "alice@x.io"}
	bob := &store.User{Email: "bob@x.io"}
	putUser(t, db, alice)
	putUser(t, db, bob)
	now := time.Now()
	saml := func(hash, user, idp, nameID, index string) *store.Session {
		return &store.Session{Hash: hash, UserID: user, IdP: idp, Created: now, Expires: now.Add(time.Hour), LastSeen: now,
			Logout: store.LogoutInfo{Subject: nameID, SessionID: index}}
	}
	update(t, db, func(tx store.Tx) error {
		for _, s := range []*store.Session{
			saml("a1", alice.ID, "entra", "alice@x.io", "i1"),
			saml("a2", alice.ID, "entra", "alice@x.io", "i2"),
			saml("a3", alice.ID, "okta", "alice@x.io", "i3"), // same NameID, other IdP
			saml("b1", bob.ID, "entra", "alice@x.io.evil", "i4"),
			saml("b2", bob.ID, "entra", "alice", "i5"), // a prefix of another NameID
			saml("o1", bob.ID, "oidc", "", ""),         // no subject: not indexed
		} {
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		return nil
	})
	checkIndexes(t, db)
	checkIndexes(t, db)
	for _, tt := range []struct {
		idp, nameID string
		want        []string
	}{
		{"entra", "alice@x.io", []string{"a1", "a2"}},
		{"okta", "alice@x.io", []string{"a3"}},
		{"entra", "alice", []string{"b2"}},
		{"entra", "alice@x.io.evil", []string{"b1"}},
		{"entra", "nobody", nil},
		{"oidc", "", nil},
	} {
		if got := bySubject(t, db, tt.idp, tt.nameID); !slices.Equal(got, tt.want) {
			t.Errorf("SessionsBySubject(%q, %q) = %q, want %q", tt.idp, tt.nameID, got, tt.want)
		}
	}

	// A re-put with other logout data (and a last-seen touch) keeps the
	// index in step.
	update(t, db, func(tx store.Tx) error {
		s := saml("a2", alice.ID, "entra", "alice2@x.io", "i2")
		s.LastSeen = now.Add(time.Minute)
		if err := tx.PutSession(s); err != nil {
			return err
		}
		s = saml("a1", alice.ID, "entra", "alice@x.io", "i1")
		s.LastSeen = now.Add(time.Minute)
		return tx.PutSession(s)
	})
	checkIndexes(t, db)
	if got := bySubject(t, db, "entra", "alice@x.io"); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("after re-put: %q", got)
	}

	// Every way a session goes also removes its index entry.
	update(t, db, func(tx store.Tx) error { return tx.DeleteSession("a1") })
	checkIndexes(t, db)
	update(t, db, func(tx store.Tx) error { _, err := tx.DeleteUserSessions(bob.ID); return err })
	checkIndexes(t, db)
	update(t, db, func(tx store.Tx) error {
		_, err := tx.DeleteExpiredSessions(now.Add(2*time.Hour), 0, 100)
		return err
	})
	checkIndexes(t, db)
	if n := len(snapshot(t, db)[string(bucketSessionSubjects)]); n != 0 {
		t.Errorf("%d index entries left", n)
	}
	update(t, db, func(tx store.Tx) error { return tx.PutSession(saml("a4", alice.ID, "entra", "alice@x.io", "")) })
	update(t, db, func(tx store.Tx) error { return tx.DeleteUser(alice.ID) })
	checkIndexes(t, db)
	checkIndexes(t, db)
	if got := bySubject(t, db, "entra", "alice@x.io"); got != nil {
		t.Errorf("after DeleteUser: %q", got)
	}
}

func TestLoadOrStoreSecret(t *testing.T) {
	db := openTest(t)
	view(t, db, func(tx store.Tx) error {
		if _, err := tx.LoadOrStoreSecret("sp-key", nil); !isNotFound(err) {
			t.Errorf("lookup of a missing secret: %v, want ErrNotFound", err)
		}
		if _, err := tx.LoadOrStoreSecret("sp-key", []byte("x")); err == nil {
			t.Error("stored a secret in a View")
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		got, err := tx.LoadOrStoreSecret("sp-key", []byte("first"))
		if err != nil || string(got) != "first" {
			t.Errorf("first store = %q, %v", got, err)
		}
		got[0] = 'X' // the caller's copy
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		got, err := tx.LoadOrStoreSecret("sp-key", []byte("second"))
		if err != nil || string(got) != "first" {
			t.Errorf("second store = %q, %v, want the first value kept", got, err)
		}
		return nil
	})
	view(t, db, func(tx store.Tx) error {
		got, err := tx.LoadOrStoreSecret("sp-key", nil)
		if err != nil || string(got) != "first" {
			t.Errorf("lookup = %q, %v", got, err)
		}
		return nil
	})
}
