package bolt

import (
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestSessionKeepsNameIDQualifiers: a session's SAML NameID qualifiers
// come back from every read of it, kept in the record's subject format
// field (no new record format: an earlier release reads the record); a
// session without them stores its format as before.
func TestSessionKeepsNameIDQualifiers(t *testing.T) {
	db := openTest(t)
	u := &store.User{Email: "ada@example.com", Active: true}
	putUser(t, db, u)
	const persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	t0 := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	with := store.LogoutInfo{Subject: "opaque-ada", SubjectFormat: persistent, SessionID: "idx-1",
		NameQualifier: "https://idp.example.com/idp/shibboleth", SPNameQualifier: "https://app.example.com/.sso/saml/shib/metadata"}
	without := store.LogoutInfo{Subject: "opaque-ada", SubjectFormat: persistent, SessionID: "idx-2"}
	update(t, db, func(tx store.Tx) error {
		for hash, l := range map[string]store.LogoutInfo{"h1": with, "h2": without} {
			if err := tx.PutSession(&store.Session{Hash: hash, UserID: u.ID, IdP: "shib", Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0, Logout: l}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(stx store.Tx) error {
		s, err := stx.Session("h1")
		if err != nil {
			return err
		}
		if s.Logout != with {
			t.Errorf("Session: logout %+v, want %+v", s.Logout, with)
		}
		by, err := stx.SessionsBySubject("shib", "opaque-ada")
		if err != nil {
			return err
		}
		if len(by) != 2 {
			t.Fatalf("SessionsBySubject: %d sessions, want 2", len(by))
		}
		for _, s := range by {
			if want := map[string]store.LogoutInfo{"h1": with, "h2": without}[s.Hash]; s.Logout != want {
				t.Errorf("SessionsBySubject: %s logout %+v, want %+v", s.Hash, s.Logout, want)
			}
		}
		r, _, err := stx.(*tx).getSession("h2")
		if err != nil {
			return err
		}
		if r.SubjectFormat != persistent {
			t.Errorf("a session without qualifiers stores format %q, want %q as before", r.SubjectFormat, persistent)
		}
		return nil
	})
}
