package saml

import (
	"strings"
	"testing"

	"github.com/crewjam/saml/xmlenc"
)

// TestEncryptionAlgorithms: encrypted assertions in the shapes IdPs send
// (ADFS, Shibboleth, xmlenc11 key transport) are read; those encrypted
// with an algorithm crewjam refuses, console options of PingFederate and
// Okta (RSA PKCS#1 v1.5 key transport, Triple DES), are
// saml_encryption_algorithm naming the algorithm and what is accepted, not
// saml_decryption_failed, whose fix (give the IdP the current SP
// certificate) would not help. During a key rotation (two SP keys, each
// tried) the refusal is the same.
func TestEncryptionAlgorithms(t *testing.T) {
	oaep := func(bc xmlenc.BlockCipher, dm xmlenc.DigestMethod) xmlenc.Encrypter {
		e := xmlenc.OAEP()
		e.BlockCipher, e.DigestMethod = bc, dm
		return e
	}
	oaep11 := func(bc xmlenc.BlockCipher) xmlenc.Encrypter {
		e := xmlenc.OAEP_SHA256()
		e.BlockCipher = bc
		return e
	}
	pkcs1 := func(bc xmlenc.BlockCipher) xmlenc.Encrypter {
		e := xmlenc.PKCS1v15()
		e.BlockCipher = bc
		return e
	}
	cases := []struct {
		name                 string
		enc                  xmlenc.Encrypter
		signResp, signAssert bool
		want                 string
		alg                  string // the refused algorithm the error names
	}{
		{"ADFS: aes256-cbc, rsa-oaep-mgf1p sha1, both signed", oaep(xmlenc.AES256CBC, xmlenc.SHA1), true, true, "", ""},
		{"aes128-cbc, rsa-oaep-mgf1p", oaep(xmlenc.AES128CBC, xmlenc.SHA1), true, true, "", ""},
		{"Shibboleth: aes128-gcm, rsa-oaep-mgf1p, Response signed only", oaep(xmlenc.AES128GCM, xmlenc.SHA1), true, false, "", ""},
		{"aes256-gcm, rsa-oaep-mgf1p, assertion signed only", oaep(xmlenc.AES256GCM, xmlenc.SHA1), false, true, "", ""},
		{"xmlenc11 rsa-oaep, aes256-gcm", oaep11(xmlenc.AES256GCM), true, true, "", ""},
		{"xmlenc11 rsa-oaep, aes192-cbc", oaep11(xmlenc.AES192CBC), true, true, "", ""},
		{"rsa-1_5, aes256-cbc", pkcs1(xmlenc.AES256CBC), true, true, CodeEncryptionAlgorithm, "rsa-1_5"},
		{"rsa-1_5, aes128-gcm", pkcs1(xmlenc.AES128GCM), true, true, CodeEncryptionAlgorithm, "rsa-1_5"},
		{"rsa-oaep-mgf1p, tripledes-cbc", oaep(xmlenc.TripleDES, xmlenc.SHA1), true, true, CodeEncryptionAlgorithm, "tripledes-cbc"},
	}
	for _, keys := range []struct {
		name string
		opts []harnessOpt
	}{
		{"one SP key", nil},
		{"two SP keys", []harnessOpt{func(c *Config) { c.SPKeys = []KeyPair{testKeys()[1], testKeys()[0]} }}},
	} {
		h := newHarness(t, keys.opts...)
		h.idp.AddUser(oktaUser)
		for _, tc := range cases {
			t.Run(keys.name+"/"+tc.name, func(t *testing.T) {
				pend := h.begin(t)
				spec := h.spec(pend)
				spec.SignResponse, spec.SignAssertion = tc.signResp, tc.signAssert
				spec.EncryptTo = testKeys()[0].Certificate
				spec.Encrypter = tc.enc
				a, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
				if got := codeOf(err); got != tc.want {
					t.Fatalf("code = %q, want %q (err: %v)", got, tc.want, err)
				}
				if tc.want == "" {
					if a == nil || a.Subject != "ada" {
						t.Fatalf("assertion = %+v", a)
					}
					return
				}
				msg := err.Error()
				for _, want := range []string{tc.alg, "AES-128", "GCM or CBC", "rsa-oaep-mgf1p", "xmlenc11 rsa-oaep"} {
					if !strings.Contains(msg, want) {
						t.Errorf("the error does not say %q: %s", want, msg)
					}
				}
			})
		}
	}
}
