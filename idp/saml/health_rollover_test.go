package saml

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// certExpiring is the base64 DER of a self-signed certificate named cn
// whose NotAfter is notAfter (to the second, as X.509 keeps it).
func certExpiring(t *testing.T, cn string, notAfter time.Time) (string, time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-365 * 24 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	cert := selfSigned(t, key, tmpl)
	return base64.StdEncoding.EncodeToString(cert.Raw), cert.NotAfter
}

// TestMetadataHealthCertificateExpiryRollover: the certificate expiry an
// operator alerts on is the last signing certificate's: during a rollover
// the IdP publishes the old certificate, about to expire, beside the new
// one, and sign-in (which ignores certificate dates) is fine until the
// IdP signs with a key the metadata lacks, after the last one expires.
// Encryption certificates and certificates that do not parse count for
// nothing; with no signing certificate that parses the expiry is unknown.
func TestMetadataHealthCertificateExpiryRollover(t *testing.T) {
	day := 24 * time.Hour
	now := time.Now()
	oldCert, oldExpiry := certExpiring(t, "IdP signing, old", now.Add(5*day))
	newCert, newExpiry := certExpiring(t, "IdP signing, new", now.Add(2*365*day))
	encCert, _ := certExpiring(t, "IdP encryption", now.Add(20*365*day))
	const garbage = "bm90IGEgY2VydGlmaWNhdGU=" // "not a certificate"
	signing := func(certs ...string) saml.KeyDescriptor {
		kd := saml.KeyDescriptor{Use: "signing"}
		for _, c := range certs {
			kd.KeyInfo.X509Data.X509Certificates = append(kd.KeyInfo.X509Data.X509Certificates, saml.X509Certificate{Data: c})
		}
		return kd
	}
	encryption := signing(encCert)
	encryption.Use = "encryption"
	unspecified := signing(newCert)
	unspecified.Use = "" // a KeyDescriptor without use is for signing too

	cases := []struct {
		name string
		kds  []saml.KeyDescriptor
		want time.Time
	}{
		{"rollover, old first", []saml.KeyDescriptor{signing(oldCert), signing(newCert), encryption}, newExpiry},
		{"rollover, new first", []saml.KeyDescriptor{signing(newCert), signing(oldCert)}, newExpiry},
		{"rollover, one KeyDescriptor", []saml.KeyDescriptor{signing(oldCert, newCert)}, newExpiry},
		{"rollover, new without use", []saml.KeyDescriptor{signing(oldCert), unspecified}, newExpiry},
		{"one certificate", []saml.KeyDescriptor{signing(oldCert), encryption}, oldExpiry},
		{"one that parses", []saml.KeyDescriptor{signing(garbage), signing(newCert)}, newExpiry},
		{"none that parse", []saml.KeyDescriptor{signing(garbage), encryption}, time.Time{}},
	}
	h := newHarness(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.idp.SetHooks(samltest.Hooks{Metadata: func(ed *saml.EntityDescriptor) {
				ed.IDPSSODescriptors[0].KeyDescriptors = tc.kds
			}})
			if err := h.p.loadMetadata(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := h.p.MetadataHealth().CertificateExpiry; !got.Equal(tc.want) {
				t.Fatalf("CertificateExpiry = %v, want %v", got, tc.want)
			}
		})
	}
}
