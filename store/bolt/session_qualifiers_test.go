package bolt

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

// TestSessionQualifiersKeepRecordFormat: a session's SAML NameID qualifiers
// are kept in the record's subject format field (no new record format: an
// earlier release reads the record back), and a session without them
// stores its format as before. That every read returns them is the
// conformance suite's SessionNameIDQualifiers.
func TestSessionQualifiersKeepRecordFormat(t *testing.T) {
	db := openTest(t)
	formats := storetest.QualifiedSessions(t, db)
	view(t, db, func(stx store.Tx) error {
		for hash, want := range formats {
			r, _, err := stx.(*tx).getSession(hash)
			if err != nil {
				return err
			}
			if r.SubjectFormat != want {
				t.Errorf("session %s stores format %q, want %q", hash, r.SubjectFormat, want)
			}
		}
		return nil
	})
}
