package store

import (
	"strings"
	"testing"
)

// TestStoredSubjectFormat: a LogoutInfo's format and NameID qualifiers come
// back from the one stored value as they were; without qualifiers the
// stored value is the format itself, as every release has stored it, and
// a value an earlier release stored reads as a format without qualifiers.
func TestStoredSubjectFormat(t *testing.T) {
	const persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	for _, in := range []LogoutInfo{
		{},
		{SubjectFormat: persistent},
		{SubjectFormat: persistent, NameQualifier: "https://idp.example.com/idp/shibboleth", SPNameQualifier: "https://app.example.com/.sso/saml/okta/metadata"},
		{NameQualifier: "only the IdP's & a = sign, ?%"},
		{SubjectFormat: persistent, SPNameQualifier: "https://app.example.com/.sso/saml/entra/metadata"}, // only the SP's qualifier
		{SubjectFormat: packedFormatPrefix + "format=x"},                                                 // a format that looks packed
	} {
		stored := in.StoredSubjectFormat()
		if in.NameQualifier == "" && in.SPNameQualifier == "" && !strings.HasPrefix(in.SubjectFormat, packedFormatPrefix) && stored != in.SubjectFormat {
			t.Errorf("%+v stored as %q, want the format as it is", in, stored)
		}
		if HasControl(stored) || len(stored) > MaxKeyBytes {
			t.Errorf("%+v stored as %q", in, stored)
		}
		var out LogoutInfo
		out.SetStoredSubjectFormat(stored)
		if out != in {
			t.Errorf("%+v stored as %q reads back as %+v", in, stored, out)
		}
	}
	// Qualifiers that would not fit are left out, not the session refused.
	long := LogoutInfo{SubjectFormat: persistent, NameQualifier: strings.Repeat("q", MaxKeyBytes)}
	if got := long.StoredSubjectFormat(); got != persistent {
		t.Errorf("qualifiers beyond MaxKeyBytes stored as %.80q…, want the format alone", got)
	}
}

// TestSetStoredSubjectFormatReplacesAll: reading a stored value sets all
// three fields, so a LogoutInfo read into again (a plain format, as an
// earlier release stored it, or a packed value that does not parse) keeps
// no qualifier from before: a LogoutRequest must not name another
// session's NameQualifier.
func TestSetStoredSubjectFormatReplacesAll(t *testing.T) {
	const persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	for _, stored := range []string{persistent, "", packedFormatPrefix + "format=%zz"} {
		l := LogoutInfo{SubjectFormat: "old", NameQualifier: "https://old-idp.example.com", SPNameQualifier: "https://old-sp.example.com"}
		l.SetStoredSubjectFormat(stored)
		if want := (LogoutInfo{SubjectFormat: stored}); l != want {
			t.Errorf("SetStoredSubjectFormat(%q) = %+v, want %+v", stored, l, want)
		}
	}
}

// TestStoredSubjectFormatAtMaxKeyBytes: a packed value of exactly
// MaxKeyBytes fits the index and keeps the qualifiers; one byte more
// leaves them out.
func TestStoredSubjectFormatAtMaxKeyBytes(t *testing.T) {
	fill := MaxKeyBytes - len(packedFormatPrefix+"nq=")
	fits := LogoutInfo{NameQualifier: strings.Repeat("q", fill)}
	stored := fits.StoredSubjectFormat()
	var back LogoutInfo
	back.SetStoredSubjectFormat(stored)
	if len(stored) != MaxKeyBytes || back != fits {
		t.Errorf("%d-byte packed value stored as %d bytes, reads back with NameQualifier of %d bytes", MaxKeyBytes, len(stored), len(back.NameQualifier))
	}
	over := LogoutInfo{NameQualifier: strings.Repeat("q", fill+1)}
	if got := over.StoredSubjectFormat(); got != "" {
		t.Errorf("%d-byte packed value stored as %.40q…, want the (empty) format alone", MaxKeyBytes+1, got)
	}
}
