package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// QualifiedSessions writes in st a user and two of its sessions at the
// SAML IdP "shib" with the same persistent NameID: h1 with NameID
// qualifiers, h2 without. It returns, by hash, the subject format each
// must keep in its record, for a backend's own test of its storage: the
// qualifiers are kept in that field, so that the record format (the
// schema) stays the one an earlier release reads. That every read
// returns them is the suite's SessionNameIDQualifiers.
func QualifiedSessions(t testing.TB, st store.Store) map[string]string {
	t.Helper()
	update := func(fn func(store.Tx) error) {
		t.Helper()
		if err := st.Update(context.Background(), fn); err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	u := &store.User{Email: "ada@example.com", Active: true}
	update(func(tx store.Tx) error { return tx.PutUser(u) })
	const persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	t0 := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	with := store.LogoutInfo{Subject: "opaque-ada", SubjectFormat: persistent, SessionID: "idx-1",
		NameQualifier: "https://idp.example.com/idp/shibboleth", SPNameQualifier: "https://app.example.com/.sso/saml/shib/metadata"}
	without := store.LogoutInfo{Subject: "opaque-ada", SubjectFormat: persistent, SessionID: "idx-2"}
	update(func(tx store.Tx) error {
		for hash, l := range map[string]store.LogoutInfo{"h1": with, "h2": without} {
			if err := tx.PutSession(&store.Session{Hash: hash, UserID: u.ID, IdP: "shib", Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0, Logout: l}); err != nil {
				return err
			}
		}
		return nil
	})
	return map[string]string{"h1": with.StoredSubjectFormat(), "h2": persistent}
}
