package saml

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds on what an untrustedKeyError shows of certificates: those of the
// message are the sender's choice, so however many it carries, and however
// long their subjects, the log line stays short.
const (
	maxListedCerts  = 2
	maxSubjectBytes = 200
)

// untrustedKeyError is the error of CodeUntrustedKey: a message signed with
// a certificate the IdP metadata does not list. crewjam's text alone
// ("Could not verify certificate against trusted certs") reads the same
// after an IdP rolled its signing key over, the usual cause, as for a
// message signed with any certificate at all. So the text names the
// certificates the message carries in its KeyInfo (thumbprint, subject,
// NotBefore) and, once describeTrust has added them, those the metadata
// in use lists and where that came from: the operator compares the
// thumbprint with the IdP's current signing certificate. A certificate
// with the subject of the listed one and a later NotBefore is what a
// rollover looks like, though anyone can make one. Nothing of it changes
// whether the message is accepted.
type untrustedKeyError struct {
	signed  certList // from the message: unverified
	unread  bool     // no message to read signed from
	trusted certList // the metadata's signing certificates (describeTrust)
	source  string   // where the metadata came from (describeTrust)
	err     error
}

// untrustedKey is classify's error for a message signed with a certificate
// the metadata does not list. message is the message's XML as crewjam gave
// it back ("" when it gave none, as for logout messages).
func untrustedKey(message string, err error) *untrustedKeyError {
	return &untrustedKeyError{signed: keyInfoCerts(message), unread: message == "", err: &cappedError{err}}
}

func (e *untrustedKeyError) Error() string {
	var b strings.Builder
	b.WriteString(e.err.Error())
	switch {
	case e.unread:
		// crewjam gave no message back (a logout message) to read.
	case len(e.signed.certs) == 0:
		b.WriteString("; the message carries no certificate in a KeyInfo this SP could read")
	default:
		b.WriteString("; the message is signed with a certificate the IdP metadata does not list: ")
		b.WriteString(e.signed.String())
	}
	if e.source != "" {
		fmt.Fprintf(&b, "; the metadata in use (%s) lists %s", e.source, e.trusted.String())
	}
	if len(e.signed.certs) > 0 {
		b.WriteString("; if the IdP shows this thumbprint for its current signing certificate, the metadata here is stale " +
			"(replace it with the IdP's current metadata); if not, the message was not signed by the IdP")
	}
	return b.String()
}

func (e *untrustedKeyError) Unwrap() error { return e.err }

// describeTrust adds to err, when it is (or wraps) an untrustedKeyError,
// the signing certificates of md, the metadata the message was verified
// against, and where that came from. Other errors are returned as they are.
func (p *Provider) describeTrust(md *idpMetadata, err error) error {
	var u *untrustedKeyError
	if md != nil && errors.As(err, &u) {
		u.trusted = certListOf(signingCerts(md.ed))
		u.source = p.metadataOrigin()
	}
	return err
}

// metadataOrigin names the configured metadata source by its setting.
func (p *Provider) metadataOrigin() string {
	switch {
	case len(p.cfg.MetadataXML) > 0:
		return "inline metadata"
	case p.cfg.MetadataFile != "":
		return fmt.Sprintf("metadata_file %.300s", p.cfg.MetadataFile)
	}
	return fmt.Sprintf("metadata_url %.300s", p.cfg.MetadataURL)
}

// certList is up to maxListedCerts distinct certificates, and how many
// more there were.
type certList struct {
	certs []certSummary
	more  int
	seen  map[[sha256.Size]byte]bool
}

// certSummary is what a log line shows of one certificate.
type certSummary struct {
	thumbprint string            // SHA-256 of the DER, upper-case hex
	cert       *x509.Certificate // nil when the bytes do not parse
	subject    string            // printable, at most maxSubjectBytes
	bad        string            // why there is no cert
}

func (s certSummary) String() string {
	switch {
	case s.cert != nil:
		return fmt.Sprintf("SHA-256 %s, subject %q, NotBefore %s", s.thumbprint, s.subject,
			s.cert.NotBefore.UTC().Format(time.RFC3339))
	case s.thumbprint != "":
		return fmt.Sprintf("SHA-256 %s (%s)", s.thumbprint, s.bad)
	}
	return "a certificate that " + s.bad
}

func (l certList) String() string {
	if len(l.certs) == 0 {
		return "no signing certificate"
	}
	parts := make([]string, 0, len(l.certs)+1)
	for _, c := range l.certs {
		parts = append(parts, c.String())
	}
	if l.more > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", l.more))
	}
	return strings.Join(parts, "; ")
}

// add summarises one base64 certificate, unless the list holds it already.
func (l *certList) add(b64 string) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		// Not a certificate by anyone's reading: counted once.
		der = nil
	}
	sum := sha256.Sum256(der)
	if l.seen == nil {
		l.seen = map[[sha256.Size]byte]bool{}
	}
	if l.seen[sum] {
		return
	}
	l.seen[sum] = true
	if len(l.certs) == maxListedCerts {
		l.more++
		return
	}
	s := certSummary{bad: "is not base64"}
	if der != nil {
		s.thumbprint = strings.ToUpper(hex.EncodeToString(sum[:]))
		if c, err := x509.ParseCertificate(der); err != nil {
			s.bad = "does not parse as a certificate"
		} else {
			s.cert, s.subject = c, printable(c.Subject.String(), maxSubjectBytes)
		}
	}
	l.certs = append(l.certs, s)
}

// certListOf summarises base64 certificates (the metadata's).
func certListOf(b64s []string) certList {
	var l certList
	for _, c := range b64s {
		l.add(c)
	}
	return l
}

// keyInfoCerts reads the certificates in the KeyInfo of the signatures of
// message's root element and of its Assertion children: the ones crewjam
// checks. A document that does not parse yields what came before the
// error. (An encrypted assertion's signature cannot be read here.)
func keyInfoCerts(message string) certList {
	var l certList
	d := xml.NewDecoder(strings.NewReader(message)) //nolint:gosec // G709: reads raw tokens of a document refuseDeclarations has passed; builds nothing
	// As in refuseDeclarations: the declared encoding is not trusted.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var (
		path  [6]string // local names of the open elements, the first six
		depth int
		text  strings.Builder
		in    bool // inside an X509Certificate of interest
	)
	for {
		tok, err := d.RawToken()
		if err != nil {
			return l
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth < len(path) {
				path[depth] = t.Name.Local
			}
			depth++
			in = signatureCertificate(path[:min(depth, len(path))], depth)
			text.Reset()
		case xml.CharData:
			if in {
				text.Write(t)
			}
		case xml.EndElement:
			if in {
				l.add(text.String())
				in = false
			}
			depth--
		}
	}
}

// signatureCertificate reports whether the open elements, path (depth of
// them), end in Signature/KeyInfo/X509Data/X509Certificate on the root or
// on an Assertion child of the root.
func signatureCertificate(path []string, depth int) bool {
	tail := []string{"Signature", "KeyInfo", "X509Data", "X509Certificate"}
	switch depth {
	case 5:
		return slices.Equal(path[1:], tail)
	case 6:
		return path[1] == "Assertion" && slices.Equal(path[2:], tail)
	}
	return false
}

// printable is s without control or format characters (bidirectional
// overrides included) or invalid UTF-8, cut to at most limit bytes (plus
// an ellipsis) on a character boundary.
func printable(s string, limit int) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf) || r == utf8.RuneError {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > limit {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
