package saml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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
	d := xml.NewDecoder(bytes.NewReader(data)) //nolint:gosec // G709: this scan is the guard; it reads raw tokens and builds nothing
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
			// The syntax error quotes the token it choked on (an entity
			// name, say) whole, and anyone may post such a document to
			// the ACS or SLO endpoint without a flow cookie; the refusal
			// goes to a WARN line, so it is capped like crewjam's errors.
			return &cappedError{fmt.Errorf("reading XML: %w", err)}
		}
		if _, ok := tok.(xml.Directive); ok {
			return errDoctype
		}
	}
}

// readCapped reads r to the end, failing with a *tooLargeError once more
// than limit bytes arrive.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &tooLargeError{limit}
	}
	return data, nil
}

// tooLargeError is a document over readCapped's limit: unlike a read that
// failed, reading it again gives the same.
type tooLargeError struct{ limit int64 }

func (e *tooLargeError) Error() string { return fmt.Sprintf("larger than %d bytes", e.limit) }
