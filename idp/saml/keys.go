package saml

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

const (
	// spKeyBits is the RSA key size GenerateKeyPair uses. RSA because XML
	// Encryption's key transport needs it (the same key decrypts
	// assertions); 2048 bits because every IdP accepts it.
	spKeyBits = 2048
	// spCertValidity is how long a generated certificate is valid. SAML
	// treats metadata certificates as key containers, but some IdPs refuse
	// to encrypt to an expired one; rotation is by adding a second key pair.
	spCertValidity = 10 * 365 * 24 * time.Hour
)

// KeyPair is an SP signing and decryption key with its certificate, as
// published in the SP metadata.
type KeyPair struct {
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate
}

func (kp KeyPair) validate() error {
	if kp.Key == nil || kp.Certificate == nil {
		return errors.New("key and certificate are both required")
	}
	if kp.Key.N.BitLen() < 2048 {
		return fmt.Errorf("RSA key of %d bits is too short (at least 2048)", kp.Key.N.BitLen())
	}
	pub, ok := kp.Certificate.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&kp.Key.PublicKey) {
		return errors.New("certificate does not match the private key")
	}
	return nil
}

// GenerateKeyPair makes a new RSA key and a self-signed certificate for it
// with the given common name (conventionally the SP's host name). IdPs pin
// the certificate from the SP metadata, so no CA is involved.
func GenerateKeyPair(commonName string) (KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, spKeyBits)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: generating SP key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: generating serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(spCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: creating SP certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return KeyPair{}, fmt.Errorf("saml: parsing SP certificate: %w", err)
	}
	return KeyPair{Key: key, Certificate: cert}, nil
}

// EncodeKeyPairPEM encodes kp as one PEM document: the private key (PKCS #8,
// "PRIVATE KEY") followed by the certificate, the form in which the Caddy
// module persists generated keys in its store. The result is a secret.
func EncodeKeyPairPEM(kp KeyPair) ([]byte, error) {
	if err := kp.validate(); err != nil {
		return nil, fmt.Errorf("saml: encoding key pair: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		return nil, fmt.Errorf("saml: encoding key pair: %w", err)
	}
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		return nil, fmt.Errorf("saml: encoding key pair: %w", err)
	}
	if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: kp.Certificate.Raw}); err != nil {
		return nil, fmt.Errorf("saml: encoding key pair: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeKeyPairPEM reads a private key ("PRIVATE KEY" or "RSA PRIVATE KEY")
// and its certificate from PEM data, in any order; a configured key file and
// certificate file can simply be concatenated. The first certificate is the
// SP's; further ones (a chain) are ignored. Encrypted PEM is not supported.
func DecodeKeyPairPEM(data []byte) (KeyPair, error) {
	var kp KeyPair
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "PRIVATE KEY":
			if kp.Key != nil {
				return KeyPair{}, errors.New("saml: key pair PEM holds more than one private key")
			}
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return KeyPair{}, fmt.Errorf("saml: parsing private key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return KeyPair{}, fmt.Errorf("saml: private key is %T, want RSA (it also decrypts assertions)", k)
			}
			kp.Key = rk
		case "RSA PRIVATE KEY":
			if kp.Key != nil {
				return KeyPair{}, errors.New("saml: key pair PEM holds more than one private key")
			}
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return KeyPair{}, fmt.Errorf("saml: parsing private key: %w", err)
			}
			kp.Key = k
		case "CERTIFICATE":
			if kp.Certificate != nil {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return KeyPair{}, fmt.Errorf("saml: parsing certificate: %w", err)
			}
			kp.Certificate = c
		}
	}
	if err := kp.validate(); err != nil {
		return KeyPair{}, fmt.Errorf("saml: key pair PEM: %w", err)
	}
	return kp, nil
}

// LoadKeyPair reads an SP key pair from PEM files: a certificate file and
// a key file, or one file holding both (certFile == keyFile). The errors
// name the sp_cert setting the files come from.
func LoadKeyPair(certFile, keyFile string) (KeyPair, error) {
	var data []byte
	for _, f := range []string{certFile, keyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			return KeyPair{}, fmt.Errorf("sp_cert: %w", err)
		}
		data = append(append(data, b...), '\n')
		if certFile == keyFile {
			break
		}
	}
	kp, err := DecodeKeyPairPEM(data)
	if err != nil {
		return KeyPair{}, fmt.Errorf("sp_cert %s %s: %w", certFile, keyFile, err)
	}
	return kp, nil
}
