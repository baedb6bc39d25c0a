package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestSessionQualifiersKeepSchema: a session's SAML NameID qualifiers are
// kept in the subject_format column (no migration: instances of the
// previous release go on with the same schema), and a session without them
// stores its format as before. That every read returns them is the
// conformance suite's SessionNameIDQualifiers.
func TestSessionQualifiersKeepSchema(t *testing.T) {
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
	for hash, want := range map[string]string{"h1": with.StoredSubjectFormat(), "h2": persistent} {
		var format string
		if err := db.pool.QueryRow(context.Background(), "SELECT subject_format FROM sso_sessions WHERE hash = $1", hash).Scan(&format); err != nil {
			t.Fatal(err)
		}
		if format != want {
			t.Errorf("session %s stores subject_format %q, want %q", hash, format, want)
		}
	}
}
