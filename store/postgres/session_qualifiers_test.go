package postgres

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestSessionQualifiersKeepSchema: a session's SAML NameID qualifiers are
// kept in the subject_format column (no migration: instances of the
// previous release go on with the same schema), and a session without them
// stores its format as before. That every read returns them is the
// conformance suite's SessionNameIDQualifiers.
func TestSessionQualifiersKeepSchema(t *testing.T) {
	db := openTest(t)
	for hash, want := range storetest.QualifiedSessions(t, db) {
		var format string
		if err := db.pool.QueryRow(context.Background(), "SELECT subject_format FROM sso_sessions WHERE hash = $1", hash).Scan(&format); err != nil {
			t.Fatal(err)
		}
		if format != want {
			t.Errorf("session %s stores subject_format %q, want %q", hash, format, want)
		}
	}
}
