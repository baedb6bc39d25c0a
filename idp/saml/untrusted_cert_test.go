package saml

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

func thumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// fileHarness is a harness whose Provider reads the IdP's metadata, as it
// is now, from a file, the setup in which an IdP key rollover goes
// unnoticed until sign-in fails.
func fileHarness(t *testing.T) (*harness, string) {
	h := newHarness(t)
	md, err := h.idp.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "idp.xml")
	if err := os.WriteFile(f, md, 0o600); err != nil {
		t.Fatal(err)
	}
	h.p.Close()
	h.cfg.MetadataURL, h.cfg.MetadataFile = "", f
	h.p = h.newProvider()
	t.Cleanup(func() { h.p.Close() })
	return h, f
}

// The IdP rolled its signing key over and the metadata_file is the old
// copy: the refusal names the certificate the IdP now signs with (its
// thumbprint, subject and NotBefore), the one the metadata lists, and the
// file, so the operator can tell a rollover from a forgery.
func TestUntrustedKeyNamesCertificates(t *testing.T) {
	h, file := fileHarness(t)
	_, oldCert := h.idp.Key()
	h.idp.AddUser(oktaUser)
	if res := h.login(newBrowser(t), "ada", "pw", "/app"); res.Error != "" {
		t.Fatalf("before the rollover: %s", res.Error)
	}
	if err := h.idp.RotateKey(false); err != nil {
		t.Fatal(err)
	}
	_, newCert := h.idp.Key()

	// The real login, through the IdP's form and its auto-posted response.
	res := h.login(newBrowser(t), "ada", "pw", "/app")
	if res.Code != CodeUntrustedKey {
		t.Fatalf("code %q (%s), want %s", res.Code, res.Error, CodeUntrustedKey)
	}
	for _, want := range []string{
		"the metadata in use (metadata_file " + file + ") lists SHA-256 " + thumbprint(oldCert),
		"SHA-256 " + thumbprint(newCert),
		`subject "CN=samltest IdP"`,
		"NotBefore " + newCert.NotBefore.UTC().Format(time.RFC3339),
		"if the IdP shows this thumbprint for its current signing certificate, the metadata here is stale",
	} {
		if !strings.Contains(res.Error, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, res.Error)
		}
	}
	if n := strings.Count(res.Error, thumbprint(newCert)); n != 1 {
		t.Errorf("the certificate that signed both Response and Assertion is listed %d times, want once:\n%s", n, res.Error)
	}

	// What the metadata in use lists, and where it came from: added where
	// the message was verified against it (verifyWithRollover).
	pend := h.begin(t)
	_, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil))
	if codeOf(err) != CodeUntrustedKey {
		t.Fatalf("forged with the new key: %v", err)
	}
	msg := h.p.describeTrust(h.p.md.Load(), err).Error()
	for _, want := range []string{
		"SHA-256 " + thumbprint(newCert),
		"the metadata in use (metadata_file " + file + ") lists SHA-256 " + thumbprint(oldCert) + `, subject "CN=samltest IdP", NotBefore ` +
			oldCert.NotBefore.UTC().Format(time.RFC3339),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, msg)
		}
	}
}

// Every metadata source is named by its setting.
func TestUntrustedKeyNamesMetadataSource(t *testing.T) {
	h, file := fileHarness(t)
	md, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  func(*Config)
		want string
	}{
		{func(c *Config) { c.MetadataURL, c.MetadataFile = h.idp.MetadataURL(), "" }, "(metadata_url " + h.idp.MetadataURL() + ")"},
		{func(*Config) {}, "(metadata_file " + file + ")"},
		{func(c *Config) { c.MetadataFile, c.MetadataXML = "", md }, "(inline metadata)"},
	} {
		cfg := h.cfg
		tc.cfg(&cfg)
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		idpMD, err := parseIdPMetadata(md, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got := p.describeTrust(idpMD, untrustedKey("", saml.ErrUntrustedCertificate)).Error()
		if !strings.Contains(got, tc.want) {
			t.Errorf("got %s, want it to name %s", got, tc.want)
		}
	}
}

// A message's KeyInfo is the sender's to fill: a subject of kilobytes with
// terminal escapes and bidirectional overrides, certificates that are not
// base64 or do not parse, and more of them than anyone needs make a
// refusal of bounded length, with no control characters.
func TestUntrustedKeyBoundedMessage(t *testing.T) {
	h := newHarness(t)
	key, cert := hostileCert(t)
	junk := []string{
		strings.Repeat("!not base64!", 5000),
		base64.StdEncoding.EncodeToString(make([]byte, 3000)),
	}
	for range 5 {
		_, c, err := samltest.NewKeyPair("another")
		if err != nil {
			t.Fatal(err)
		}
		junk = append(junk, base64.StdEncoding.EncodeToString(c.Raw))
	}
	stuff := func(el *etree.Element) {
		for _, x := range el.FindElements("//Signature/KeyInfo/X509Data") {
			for _, j := range junk {
				x.CreateElement("ds:X509Certificate").SetText(j)
			}
		}
	}
	pend := h.begin(t)
	spec := h.spec(pend)
	spec.Key, spec.Certificate = key, cert
	_, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, stuff))
	if codeOf(err) != CodeUntrustedKey {
		t.Fatalf("signed with an unlisted key: %v", err)
	}
	msg := h.p.describeTrust(h.p.md.Load(), err).Error()
	t.Logf("%d bytes: %s", len(msg), msg)
	if len(msg) > 1500 {
		t.Errorf("the refusal is %d bytes:\n%.3000s", len(msg), msg)
	}
	for _, r := range msg {
		if unicode.In(r, unicode.Cc, unicode.Cf) {
			t.Errorf("the refusal holds %U:\n%q", r, msg)
			break
		}
	}
	for _, want := range []string{"SHA-256 " + thumbprint(cert), "…", "not base64", "and 6 more"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, msg)
		}
	}
}

// hostileCert is a key and a self-signed certificate whose subject is
// long and full of characters that do not belong in a log line.
func hostileCert(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cn := strings.Repeat("evil\x1b[31m\u202e\r\n", 100)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{strings.Repeat("O", 4000)}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	cert := selfSigned(t, key, tmpl)
	return key, cert
}

// TestPrintable: what a log line shows of a certificate subject: no
// control or format characters, no invalid UTF-8, at most limit bytes
// cut on a character boundary, then an ellipsis.
func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"CN=idp", "CN=idp"},
		{strings.Repeat("a", 200), strings.Repeat("a", 200)},
		{strings.Repeat("a", 201), strings.Repeat("a", 200) + "…"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
		{"a\x1b[31m\u202eb\r\n\xffc", "a[31mbc"},
	} {
		if got := printable(tc.in, 200); got != tc.want {
			t.Errorf("printable(%q) = %q (%d bytes), want %q (%d bytes)", tc.in, got, len(got), tc.want, len(tc.want))
		}
	}
}

// TestKeyInfoCertsWhereCrewjamLooks: the certificates an untrusted-key
// refusal names are those of the signatures crewjam checks, on the root
// element and on its Assertion children, not any Signature one level
// down.
func TestKeyInfoCertsWhereCrewjamLooks(t *testing.T) {
	_, cert, err := samltest.NewKeyPair("listed")
	if err != nil {
		t.Fatal(err)
	}
	sig := `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(cert.Raw) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`
	for _, tc := range []struct {
		name, doc string
		want      int
	}{
		{"on the root", `<Response>` + sig + `</Response>`, 1},
		{"on an Assertion", `<Response><Assertion>` + sig + `</Assertion></Response>`, 1},
		{"on another child", `<Response><Extensions>` + sig + `</Extensions></Response>`, 0},
	} {
		if got := len(keyInfoCerts(tc.doc).certs); got != tc.want {
			t.Errorf("%s: %d certificates, want %d", tc.name, got, tc.want)
		}
	}
}
