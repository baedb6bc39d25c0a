// Package exampletest runs the examples' shipped configuration files (the
// nginx and Traefik examples) and the configurations the docs give (a
// fenced block of a Markdown page) as they are: read with the few
// replacements a test needs (ports, addresses, certificate paths), each of
// which must still match, and served with a self-signed certificate.
package exampletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Shipped reads the file name (of the test's directory) and applies the
// replacements, old and new in pairs, each of which must match: a test
// that no longer finds what it replaces fails instead of testing
// something else.
func Shipped(t testing.TB, name string, replace ...string) string {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return replaced(t, name, string(raw), replace)
}

// replaced applies the replacements to s, read from name, failing the
// test when one no longer matches.
func replaced(t testing.TB, name, s string, replace []string) string {
	t.Helper()
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s no longer contains %q", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}

// DocBlock reads the first fenced code block of language lang (```lang)
// after the heading line heading (as written, "## Caddy's forward_auth")
// of the Markdown page name, and applies the replacements as Shipped
// does: a test runs the configuration the docs give operators, not a copy
// of it that could drift. A page without that heading or block fails the
// test.
func DocBlock(t testing.TB, name, heading, lang string, replace ...string) string {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no heading %q", name, heading)
	}
	_, rest, ok = strings.Cut(rest, "\n```"+lang+"\n")
	if !ok {
		t.Fatalf("%s has no ```%s block after %q", name, lang, heading)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("%s: the ```%s block after %q does not end", name, lang, heading)
	}
	return replaced(t, name, block+"\n", replace)
}

// Write writes content to path, making its directory.
func Write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// SelfSigned writes a certificate for host (an IP address or a DNS name),
// valid for an hour either side of now, and its key, and returns a pool
// that trusts it.
func SelfSigned(t testing.TB, certFile, keyFile, host string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	Write(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	Write(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
