package oidctest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"fmt"
)

// hashFor returns the hash of a JWS algorithm, 0 for "none" or unknown ones.
func hashFor(alg string) crypto.Hash {
	if len(alg) != 5 {
		return 0
	}
	switch alg[2:] {
	case "256":
		return crypto.SHA256
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return 0
}

// sign computes the JWS signature of input for alg.
func sign(alg string, input []byte, key *rsa.PrivateKey, secret []byte) ([]byte, error) {
	if alg == "none" {
		return nil, nil
	}
	h := hashFor(alg)
	if h == 0 {
		return nil, fmt.Errorf("oidctest: unsupported alg %q", alg)
	}
	switch alg[:2] {
	case "HS":
		m := hmac.New(h.New, secret)
		m.Write(input)
		return m.Sum(nil), nil
	case "RS", "PS":
		d := h.New()
		d.Write(input)
		if alg[0] == 'R' {
			return rsa.SignPKCS1v15(rand.Reader, key, h, d.Sum(nil))
		}
		return rsa.SignPSS(rand.Reader, key, h, d.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return nil, fmt.Errorf("oidctest: unsupported alg %q", alg)
}
