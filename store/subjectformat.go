package store

import (
	"net/url"
	"strings"
)

// A session's SAML NameID qualifiers are stored with its subject format, in
// the one field the backends have kept it in (the bolt session record's,
// PostgreSQL's subject_format column), rather than in fields of their own:
// that took neither a new bolt record format, which an earlier release
// could not read back (a downgrade), nor a PostgreSQL migration, which an
// earlier release started after it refuses (docs/cluster.md, "Upgrades and
// mixed versions"). The field is never indexed or searched. A session
// without qualifiers (every OIDC one, every one stored before they were
// kept, and most SAML ones) stores its format as it always has; one with
// them stores packedFormatPrefix and the three, query-encoded. An earlier
// release reading such a session back (in a rolling upgrade) would send
// that text as the NameID Format of its LogoutRequest, which the IdP may
// refuse: its SP-initiated logout of sessions signed in on a newer
// instance, only while both run.

// packedFormatPrefix starts a stored subject format that carries the
// qualifiers. A NameID Format is a URI, which never starts so.
const packedFormatPrefix = "caddy-sso:nameid?"

// StoredSubjectFormat is what a backend stores as l's subject format:
// SubjectFormat itself when l has no qualifiers, else all three packed
// into one value (SetStoredSubjectFormat reads it back). Packed, it is
// ASCII without control characters; when it would be longer than
// MaxKeyBytes the qualifiers are left out (the LogoutRequest then names the
// NameID without them, as before they were kept) rather than the session
// refused.
func (l LogoutInfo) StoredSubjectFormat() string {
	if l.NameQualifier == "" && l.SPNameQualifier == "" && !strings.HasPrefix(l.SubjectFormat, packedFormatPrefix) {
		return l.SubjectFormat
	}
	v := url.Values{}
	for _, f := range [...]struct{ key, value string }{
		{"format", l.SubjectFormat}, {"nq", l.NameQualifier}, {"spnq", l.SPNameQualifier},
	} {
		if f.value != "" {
			v.Set(f.key, f.value)
		}
	}
	packed := packedFormatPrefix + v.Encode()
	if len(packed) > MaxKeyBytes {
		return l.SubjectFormat
	}
	return packed
}

// SetStoredSubjectFormat sets l's SubjectFormat, NameQualifier and
// SPNameQualifier from a value StoredSubjectFormat made (or an earlier
// release stored: a plain format, and no qualifiers).
func (l *LogoutInfo) SetStoredSubjectFormat(stored string) {
	l.SubjectFormat, l.NameQualifier, l.SPNameQualifier = stored, "", ""
	rest, packed := strings.CutPrefix(stored, packedFormatPrefix)
	if !packed {
		return
	}
	v, err := url.ParseQuery(rest)
	if err != nil {
		return // not a value StoredSubjectFormat made: kept as it is
	}
	l.SubjectFormat, l.NameQualifier, l.SPNameQualifier = v.Get("format"), v.Get("nq"), v.Get("spnq")
}
