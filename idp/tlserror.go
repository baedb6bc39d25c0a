package idp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// UntrustedCertificateFix is what an operator does about an IdP whose
// certificate this host does not trust, worded for sign-in's log and for
// `caddy sso check` alike.
const UntrustedCertificateFix = "the IdP's TLS certificate does not verify on this host (signed by a CA it does not trust, " +
	"or for another name, or outside its dates): for an internal CA, install it in the system trust store or set " +
	"SSL_CERT_FILE/SSL_CERT_DIR for Caddy; else check the IdP's URL and this host's clock (docs/troubleshooting.md)"

// untrustedCertificateError is a request to the IdP that failed because its
// TLS certificate did not verify; err (a *url.Error) names the URL.
type untrustedCertificateError struct{ err error }

func (e *untrustedCertificateError) Error() string {
	return UntrustedCertificateFix + ": " + e.err.Error()
}
func (e *untrustedCertificateError) Unwrap() error { return e.err }

// UntrustedCertificate returns err worded with UntrustedCertificateFix when
// a request failed because the IdP's TLS certificate did not verify (an
// internal CA this host does not trust, a name the certificate does not
// cover, an expired certificate), and nil for any other error. Such a
// failure is no outage: trying again does not help until an administrator
// acts, so both protocols answer it with CodeMisconfigured rather than
// the "unavailable, try again" of a connection that failed.
func UntrustedCertificate(err error) error {
	if err == nil {
		return nil
	}
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
		already  *untrustedCertificateError
	)
	switch {
	case errors.As(err, &already):
		return err
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &hostname), errors.As(err, &verify):
		return &untrustedCertificateError{err}
	}
	return nil
}
