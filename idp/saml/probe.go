package saml

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
)

// ProbeResult is what Probe found in an IdP's metadata.
type ProbeResult struct {
	Source     string // where the metadata was read from
	EntityID   string
	ValidUntil time.Time // zero when the metadata sets none
	// Usable is nil when sign-in would accept the metadata, else why not
	// (no signing certificate, no SingleSignOnService it can use).
	Usable error
	// Certificates are the IdP's signing certificates.
	Certificates []Certificate
	// SingleLogout reports a SingleLogoutService: signing out then also
	// ends the IdP's session.
	SingleLogout bool
	// WantsSignedRequests: an IDPSSODescriptor says
	// WantAuthnRequestsSigned="true", and the IdP may refuse an unsigned
	// AuthnRequest (Config.SignRequests).
	WantsSignedRequests bool
}

// MaxIssueAge is how old a Response's IssueInstant may be when it arrives
// (crewjam/saml's MaxIssueDelay, which this package never changes),
// whatever ClockSkew is: an IdP clock further behind than that makes
// every Response expired on arrival.
func MaxIssueAge() time.Duration { return saml.MaxIssueDelay }

// Certificate is one signing certificate of the metadata.
type Certificate struct {
	Name      string // subject common name, else the subject
	NotBefore time.Time
	NotAfter  time.Time
	Err       error // set when the certificate does not decode
}

// Probe reads and parses IdP metadata as sign-in does (the same size cap,
// DTD refusal and parser; a URL is fetched only if sign-in would fetch it)
// and reports on it (`caddy sso check`). entityID picks the IdP out of
// metadata that describes several. The error is for metadata that cannot
// be read or parsed.
func Probe(ctx context.Context, client *http.Client, src MetadataSource, entityID string) (*ProbeResult, error) {
	r := &ProbeResult{Source: src.URL}
	if len(src.XML) == 0 && src.File == "" {
		if err := checkMetadataURL(src.URL); err != nil {
			return r, err
		}
	}
	data, where, err := readMetadata(ctx, idp.SafeRedirects(client), src)
	r.Source = where
	if err != nil {
		return r, err
	}
	ed, err := ParseMetadata(data, entityID)
	if err != nil {
		return r, err
	}
	r.EntityID, r.ValidUntil, r.Usable = ed.EntityID, ed.ValidUntil, usable(ed)
	for _, d := range ed.IDPSSODescriptors {
		r.SingleLogout = r.SingleLogout || len(d.SingleLogoutServices) > 0
		r.WantsSignedRequests = r.WantsSignedRequests || d.WantAuthnRequestsSigned != nil && *d.WantAuthnRequestsSigned
	}
	for _, b64 := range signingCerts(ed) {
		r.Certificates = append(r.Certificates, parseCertificate(b64))
	}
	return r, nil
}

func parseCertificate(b64 string) Certificate {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return Certificate{Err: fmt.Errorf("not base64: %w", err)}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Certificate{Err: fmt.Errorf("does not parse: %w", err)}
	}
	name := cert.Subject.CommonName
	if name == "" {
		name = cert.Subject.String()
	}
	return Certificate{Name: name, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
}
