package mapping

import "strings"

// MissingError is a login that lacks attributes caddy-sso needs. It is built
// for the person who can fix it, the IdP administrator, so it says which
// names were expected and which arrived. It carries attribute names only,
// never values: the error text reaches logs and error pages, and values are
// personal data (or, for a subject, an account key).
type MissingError struct {
	// Missing lists the absent attributes; uniqueUserId first when absent.
	Missing []string
	// Received lists the names of the attributes that arrived, sorted.
	Received []string
	// Expected maps each missing attribute to its candidate names, in the
	// order they were tried.
	Expected map[string][]string
	// NameIDFormat is set when uniqueUserId is missing, a NameID could have
	// supplied it, and one arrived with a Format other than persistent:
	// that NameID was refused on purpose, and the page should say so.
	NameIDFormat string
}

// Error reads, for one missing attribute:
//
//	missing uniqueUserId: expected one of [uniqueUserId userUniqueId http://…/objectidentifier], received [email firstName]
func (e *MissingError) Error() string {
	var b strings.Builder
	for i, attr := range e.Missing {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("missing ")
		b.WriteString(attr)
		b.WriteString(": expected one of [")
		b.WriteString(strings.Join(e.Expected[attr], " "))
		b.WriteString("]")
	}
	b.WriteString(", received [")
	b.WriteString(strings.Join(e.Received, " "))
	b.WriteString("]")
	if e.NameIDFormat != "" {
		b.WriteString("; NameID refused as uniqueUserId: format ")
		b.WriteString(e.NameIDFormat)
		b.WriteString(" is not ")
		b.WriteString(PersistentNameIDFormat)
	}
	return b.String()
}
