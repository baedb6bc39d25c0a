package gateway

import (
	"testing"
	"time"
)

// TestNameIDFormatShown: a format the IdP sent reaches the page only as a
// plain URI; markup or oversized text is never repeated.
func TestNameIDFormatShown(t *testing.T) {
	const refused = "(not a plain URI, so not repeated here)"
	for _, tc := range []struct{ in, want string }{
		{"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"},
		{"urn:x\"><script>alert(1)</script>", refused},
		{"urn:a b", refused},
		{string(make([]byte, 201)), refused},
	} {
		if got := nameIDFormatShown(tc.in); got != tc.want {
			t.Errorf("nameIDFormatShown(%.40q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestJWKSMaxAge: a cached key set must outlive no rotation; the default
// rotation (a signer with nothing set) gives five minutes.
func TestJWKSMaxAge(t *testing.T) {
	for _, tc := range []struct {
		rotation time.Duration
		want     int
	}{{NewIdentitySigner(SignerConfig{}).rotation, 300}, {168 * time.Hour, 300}, {10 * time.Minute, 300}, {time.Minute, 30}, {time.Second, 1}} {
		if got := jwksMaxAge(tc.rotation); got != tc.want {
			t.Errorf("jwksMaxAge(%v) = %d, want %d", tc.rotation, got, tc.want)
		}
	}
}
