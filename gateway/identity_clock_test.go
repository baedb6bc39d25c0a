package gateway

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// unverifiedClaims decodes an identity token's claims into out; its
// signature is the signer's tests' business.
func unverifiedClaims(t *testing.T, tok string, out any) {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.UnsafeClaimsWithoutVerification(out); err != nil {
		t.Fatal(err)
	}
}

// notBefore is the nbf claim of an identity token.
func notBefore(t *testing.T, tok string) time.Time {
	t.Helper()
	var c jwt.Claims
	unverifiedClaims(t, tok, &c)
	return c.NotBefore.Time()
}

// TestIdentityJWTSignedAgainAfterClockSetBack: the host's clock ran an hour
// ahead, and NTP (or the operator) sets it right. A token signed before
// says iat and nbf an hour ahead of the apps' clocks; the cache judged its
// age by the same clock and kept sending it for about an hour, while every
// app that checks nbf refused the identity. A token signed "in the future"
// is signed again at the next request; one signed by the same clock is
// still served from the cache.
func TestIdentityJWTSignedAgainAfterClockSetBack(t *testing.T) {
	e := newSignerEnv(t)
	var ahead atomic.Int64
	ahead.Store(int64(time.Hour))
	e.s = NewIdentitySigner(SignerConfig{Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	id := e.resolve()
	before := e.sign(id)

	ahead.Store(0) // the clock is set right
	after := e.sign(id)
	now := time.Now()
	if nbf := notBefore(t, after); nbf.After(now) {
		t.Fatalf("after the clock was set back an hour the route sends a token not valid before %v (now %v): apps refuse it until then (same token as before: %v)",
			nbf.Format(time.RFC3339), now.Format(time.RFC3339), after == before)
	}
	if again := e.sign(id); again != after {
		t.Error("the token signed after the clock was set right is signed again at the next request, not served from the cache")
	}
}
