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

// TestSignedOutPages: the failure pages that mean "you are signed out in
// this browser" say so to a template (.SignedOut) and to Caddy's error
// routes ({http.auth.sso.signed_out}), so that a translation cannot tell a
// person at a shared computer the opposite; the others do not.
func TestSignedOutPages(t *testing.T) {
	for _, tc := range []struct {
		name string
		pg   Page
		want bool
	}{
		{"logout_incomplete after the session ended", logoutIncompletePage("okta", "saml_signature_invalid", true), true},
		{"logout_incomplete, session alive", logoutIncompletePage("okta", "saml_signature_invalid", false), false},
		{"store_unavailable at sign-out", storeUnavailablePage(msgSignOutUnrecorded), true},
		{"store_unavailable at a session check", storeUnavailablePage(msgSessionUnavailable), false},
		{"store_unavailable at sign-in", signInNotSavedPage("okta"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pg.SignedOut != tc.want {
				t.Errorf(".SignedOut = %v, want %v", tc.pg.SignedOut, tc.want)
			}
			if got := (&PageError{Page: tc.pg}).Placeholders()["signed_out"]; got != tc.want {
				t.Errorf("{http.auth.sso.signed_out} = %v, want %v", got, tc.want)
			}
		})
	}
}
