package saml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
)

// errDoctype is returned for documents with a DOCTYPE or any other
// declaration (<!ENTITY …>, <!ELEMENT …>).
var errDoctype = errors.New("XML declarations (DOCTYPE, ENTITY) are not allowed")

// refuseDeclarations returns errDoctype if data holds an XML directive.
//
// SAML never needs a DTD, and a DTD is how entity expansion ("billion
// laughs"), external entities and parser differentials get in. Go's XML
// parsers do not expand custom entities, but etree keeps the directive in
// the tree, and a DOCTYPE can declare attributes of type ID, which is what
// some signature-wrapping variants rely on. So the document is refused
// before crewjam or etree parse it, whatever the DOCTYPE says.
//
// Only documents that contain "<!" can hold a directive (comments and CDATA
// sections share the prefix), so the common case costs one byte scan.
func refuseDeclarations(data []byte) error {
	if !bytes.Contains(data, []byte("<!")) {
		return nil
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	// The encoding is not trusted either way: RawToken reads bytes, and a
	// directive hidden by a bogus encoding declaration is still found.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading XML: %w", err)
		}
		if _, ok := tok.(xml.Directive); ok {
			return errDoctype
		}
	}
}

// readCapped reads r to the end, failing once more than limit bytes arrive.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// localPath returns raw when it is a path on this site, and "/" for
// anything else. It is applied to every return URL: the one Begin and Logout
// are given, and an IdP-initiated RelayState, which anyone can post.
//
// Browsers repair URLs generously (they drop tabs and newlines, read '\' as
// '/', decode some escapes), so the rule is an allow-list rather than a
// search for known-bad forms: one leading '/', no second '/' or '\' after it
// in any spelling (as sent, or percent-decoded up to three times), no backslash
// or control character anywhere, no raw non-ASCII, and no scheme, host or user once parsed.
func localPath(raw string) string {
	if !isLocalPath(raw) {
		return "/"
	}
	return raw
}

func isLocalPath(raw string) bool {
	if len(raw) == 0 || len(raw) > 2048 || raw[0] != '/' {
		return false
	}
	// Raw non-ASCII is refused: browsers percent-encode it themselves, and
	// some servers fold look-alikes of '/' and '.' into them.
	for i := 0; i < len(raw); i++ {
		if raw[i] >= 0x80 {
			return false
		}
	}
	// Check the path as sent and as each of up to three rounds of
	// percent-decoding leaves it; more layers than that is refused outright.
	s, stable := raw, false
	for range 4 {
		if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
				return false
			}
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if d == s {
			stable = true
			break
		}
		s = d
	}
	if !stable {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return true
}
