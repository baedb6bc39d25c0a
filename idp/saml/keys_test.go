package saml

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyPairPEM(t *testing.T) {
	kp := testKeys()[0]
	data, err := EncodeKeyPairPEM(kp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("-----BEGIN PRIVATE KEY-----")) || !bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("unexpected PEM:\n%s", data)
	}
	back, err := DecodeKeyPairPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Key.Equal(kp.Key) || !back.Certificate.Equal(kp.Certificate) {
		t.Fatal("round trip changed the key pair")
	}
	if kp.Certificate.Subject.CommonName != "sp-0.test" || kp.Key.N.BitLen() != spKeyBits {
		t.Errorf("generated %q, %d bits", kp.Certificate.Subject.CommonName, kp.Key.N.BitLen())
	}

	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(kp.Key)})
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.Certificate.Raw})
	other := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testKeys()[1].Certificate.Raw})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	cases := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "certificate first, PKCS #1 key", data: append(append([]byte{}, cert...), pkcs1...)},
		{name: "chain after the leaf is ignored", data: append(append(append([]byte{}, pkcs1...), cert...), other...)},
		{name: "key only", data: pkcs1, wantErr: "required"},
		{name: "certificate only", data: cert, wantErr: "required"},
		{name: "mismatched", data: append(append([]byte{}, pkcs1...), other...), wantErr: "does not match"},
		{name: "two keys", data: append(append(append([]byte{}, pkcs1...), pkcs1...), cert...), wantErr: "more than one"},
		{name: "ECDSA", data: append(append([]byte{}, ecPEM...), cert...), wantErr: "want RSA"},
		{name: "garbage", data: []byte("not PEM"), wantErr: "required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeKeyPairPEM(tc.data)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), []byte("BEGIN")) {
				t.Fatal("error text carries key material")
			}
		})
	}
}

// TestLoadKeyPair reads key pairs as sp_cert names them: two files, or one
// holding both; a missing or unreadable file is an error naming sp_cert.
func TestLoadKeyPair(t *testing.T) {
	kp := testKeys()[0]
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	both, err := EncodeKeyPairPEM(kp)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		t.Fatal(err)
	}
	combined := write("sp.pem", both)
	certFile := write("sp.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.Certificate.Raw}))
	keyFile := write("sp.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	garbage := write("garbage.pem", []byte("not PEM"))

	tests := []struct {
		name, cert, key string
		want            string // "" loads kp
	}{
		{"two files", certFile, keyFile, ""},
		{"key file first", keyFile, certFile, ""},
		{"one file", combined, combined, ""},
		{"certificate only", certFile, certFile, "sp_cert " + certFile + " " + certFile + ": "},
		{"missing file", certFile, filepath.Join(dir, "missing.key"), "sp_cert: open "},
		{"not PEM", garbage, keyFile, "sp_cert " + garbage + " " + keyFile + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadKeyPair(tt.cert, tt.key)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !got.Key.Equal(kp.Key) || !got.Certificate.Equal(kp.Certificate) {
					t.Error("loaded another key pair")
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %v, want one starting %q", err, tt.want)
			}
		})
	}
}
