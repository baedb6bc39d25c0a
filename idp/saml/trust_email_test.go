package saml

import "testing"

// TestTrustEmail: SAML never says whether an address was verified, so an
// assertion vouches for its email only by the operator's TrustEmail
// (which attribute it vouches for is the mapping's: signin's emailVerified).
func TestTrustEmail(t *testing.T) {
	for _, trust := range []bool{false, true} {
		h := newHarness(t, func(c *Config) { c.TrustEmail = trust })
		h.idp.AddUser(oktaUser)
		res := h.login(newBrowser(t), "ada", "pw", "/app")
		if res.Error != "" {
			t.Fatalf("trust_email %v: login refused: %s", trust, res.Error)
		}
		if res.Assertion.EmailVerified != trust {
			t.Errorf("trust_email %v: EmailVerified %v", trust, res.Assertion.EmailVerified)
		}
	}
}
