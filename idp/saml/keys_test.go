package saml

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
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
