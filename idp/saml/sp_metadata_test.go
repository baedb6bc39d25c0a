package saml

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crewjam/saml"
)

// TestSPMetadataStable: the SP metadata an IdP administrator downloads
// carries no validUntil, so a copy imported as a file (Shibboleth's
// FilesystemMetadataProvider with requireValidMetadata, SimpleSAMLphp)
// is not dropped days later though nothing in it changed, and two fetches
// days apart are the same bytes. It asks to be cached for a day
// (cacheDuration) instead.
func TestSPMetadataStable(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	h := newHarness(t, func(c *Config) { c.Now = func() time.Time { return time.Unix(0, clock.Load()) } })
	get := func() []byte {
		t.Helper()
		resp, err := http.Get(h.base + "metadata")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("SP metadata: %d %v", resp.StatusCode, err)
		}
		return body
	}
	first := get()
	clock.Add(int64(3 * 24 * time.Hour))
	second := get()
	if !bytes.Equal(first, second) {
		t.Errorf("the SP metadata changed in three days, though the keys did not:\n%s\n---\n%s", first, second)
	}
	if bytes.Contains(first, []byte("validUntil")) {
		t.Errorf("the SP metadata carries a validUntil: an IdP that imported it stops trusting it then:\n%s", first)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(first, &ed); err != nil {
		t.Fatal(err)
	}
	if ed.CacheDuration != saml.DefaultCacheDuration {
		t.Errorf("cacheDuration = %v, want %v", ed.CacheDuration, saml.DefaultCacheDuration)
	}
	if len(ed.SPSSODescriptors) != 1 || ed.SPSSODescriptors[0].ValidUntil != nil {
		t.Errorf("SPSSODescriptor validUntil = %v", ed.SPSSODescriptors[0].ValidUntil)
	}
}

// TestSPMetadataRotationKeyEncryptionMethods: during an SP key rotation the
// previous key's encryption KeyDescriptor advertises the same algorithms
// as the current key's, so an IdP that encrypts to either picks one this
// SP accepts.
func TestSPMetadataRotationKeyEncryptionMethods(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SPKeys = []KeyPair{testKeys()[1], testKeys()[0]} })
	resp, err := http.Get(h.base + "metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(body, &ed); err != nil {
		t.Fatal(err)
	}
	var methods [][]string
	for _, kd := range ed.SPSSODescriptors[0].KeyDescriptors {
		if kd.Use != "encryption" {
			continue
		}
		var algs []string
		for _, m := range kd.EncryptionMethods {
			algs = append(algs, m.Algorithm)
		}
		methods = append(methods, algs)
	}
	if len(methods) != 2 || len(methods[0]) == 0 || !slices.Equal(methods[0], methods[1]) {
		t.Fatalf("encryption KeyDescriptors advertise %q, want two with the same algorithms", methods)
	}
}
