package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestSessionAuthTimeRecord: a session record as earlier builds wrote it
// (it ends after Expires) reads back with no AuthTime; a session without
// one is still written in exactly that form, so an earlier build reads it;
// a session with one has its 8 bytes after Expires. That every read
// returns it is the conformance suite's SessionAuthTime.
func TestSessionAuthTimeRecord(t *testing.T) {
	db := openTest(t)
	u := &store.User{Email: "ada@example.com", Active: true}
	putUser(t, db, u)
	t0 := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	at := t0.Add(-time.Minute)

	// The record layout of earlier builds, spelled out rather than made
	// with encode: format 1, five length-prefixed strings, Created, Expires.
	old := []byte{sessionFormat}
	for _, s := range []string{u.ID, "okta", "sub-ada", "", "sid-1"} {
		old = binary.AppendUvarint(old, uint64(len(s)))
		old = append(old, s...)
	}
	old = binary.BigEndian.AppendUint64(old, encTime(t0))
	old = binary.BigEndian.AppendUint64(old, encTime(t0.Add(time.Hour)))

	update(t, db, func(stx store.Tx) error {
		if err := stx.PutSession(&store.Session{Hash: "without", UserID: u.ID, IdP: "okta", Created: t0, Expires: t0.Add(time.Hour),
			LastSeen: t0, Logout: store.LogoutInfo{Subject: "sub-ada", SessionID: "sid-1"}}); err != nil {
			return err
		}
		if err := stx.PutSession(&store.Session{Hash: "with", UserID: u.ID, IdP: "okta", Created: t0, Expires: t0.Add(time.Hour),
			LastSeen: t0, AuthTime: at, Logout: store.LogoutInfo{Subject: "sub-ada", SessionID: "sid-1"}}); err != nil {
			return err
		}
		// An earlier build's session, as it left it in the file.
		if err := stx.PutSession(&store.Session{Hash: "earlier", UserID: u.ID, IdP: "okta", Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0}); err != nil {
			return err
		}
		return stx.(*tx).bucket(bucketSessions).Put([]byte("earlier"), old)
	})

	view(t, db, func(stx store.Tx) error {
		b := stx.(*tx).bucket(bucketSessions)
		if got := b.Get([]byte("without")); !bytes.Equal(got, old) {
			t.Errorf("a session without AuthTime is stored as %x, want the earlier form %x", got, old)
		}
		with := b.Get([]byte("with"))
		if len(with) != len(old)+8 || !bytes.Equal(with[:len(old)], old) || !decTime(binary.BigEndian.Uint64(with[len(old):])).Equal(at) {
			t.Errorf("a session with AuthTime is stored as %x, want %x then AuthTime", with, old)
		}
		for hash, want := range map[string]time.Time{"earlier": {}, "without": {}, "with": at} {
			s, err := stx.Session(hash)
			if err != nil {
				return err
			}
			if !s.AuthTime.Equal(want) || s.AuthTime.IsZero() != want.IsZero() || s.Logout.SessionID != "sid-1" {
				t.Errorf("session %s reads back as %+v, want AuthTime %v", hash, s, want)
			}
		}
		return nil
	})

	// Neither form with a torn end decodes, nor a record of another
	// format (schema 2's JSON starts with '{'; a later build's, with 2)
	// with an otherwise sound body: its fields may mean something else.
	for _, v := range [][]byte{
		old[:len(old)-1], append(append([]byte(nil), old...), 1, 2, 3, 4),
		append([]byte{'{'}, old[1:]...), append([]byte{sessionFormat + 1}, old[1:]...),
	} {
		if _, err := decodeSessionRec(v); !errors.Is(err, errBadSession) {
			t.Errorf("decodeSessionRec(%d bytes) = %v, want errBadSession", len(v), err)
		}
	}
}
