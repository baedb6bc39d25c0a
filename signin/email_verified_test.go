package signin_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// verifiedOIDC is an OIDC assertion whose email_verified is true, for the
// standard email claim; extra adds or replaces claims.
func verifiedOIDC(idpName, sub, state string, extra map[string][]string) *idp.Assertion {
	attrs := map[string][]string{"sub": {sub}, "given_name": {"G"}, "family_name": {"F"}, "email_verified": {"true"}}
	for k, v := range extra {
		attrs[k] = v
	}
	return &idp.Assertion{IdP: idpName, Protocol: idp.ProtocolOIDC, Subject: sub, EmailVerified: true, Attributes: attrs,
		SingleUse: []idp.SingleUse{{Kind: "oidc_state", ID: idpName + "/" + state, Until: time.Now().Add(time.Minute), Code: "state_replayed"}}}
}

// signInOK signs a in through p and fails the test unless it starts a session.
func signInOK(t *testing.T, e *env, p *signin.IdP, a *idp.Assertion) *store.User {
	t.Helper()
	out, err := e.svc.SignIn(context.Background(), p, a, "")
	if err != nil || out.Session == nil {
		t.Fatalf("sign-in of %s at %s: %v %+v", a.Subject, p.Name, err, out)
	}
	return out.User
}

// TestEmailVerifiedVouchesForEmailClaimOnly: OIDC's email_verified vouches
// for the standard email claim alone. When `map email` reads another claim
// (an Auth0-style namespaced claim a user may edit, or the entra preset's
// preferred_username fallback), the mapped address is unverified, so
// link_by_email does not link a new subject to the user holding it; when
// the mapped claim is the verified address, in any spelling of the same
// mailbox, it links.
func TestEmailVerifiedVouchesForEmailClaimOnly(t *testing.T) {
	const custom = "https://app.example/email"
	for _, tc := range []struct {
		name, preset string
		overrides    map[string][]string
		claims       map[string][]string
		unverified   bool // email_verified false
		wantLinked   bool
	}{
		{"namespaced claim, another address verified", "generic", map[string][]string{mapping.Email: {custom}},
			map[string][]string{"email": {"mallory@evil.example"}, custom: {"boss@example.com"}}, false, false},
		{"namespaced claim, no email claim", "generic", map[string][]string{mapping.Email: {custom}},
			map[string][]string{custom: {"boss@example.com"}}, false, false},
		{"entra preferred_username fallback", "entra", nil,
			map[string][]string{"oid": {"oid-m"}, "preferred_username": {"boss@example.com"}}, false, false},
		{"namespaced claim, the verified address", "generic", map[string][]string{mapping.Email: {custom}},
			map[string][]string{"email": {"boss@example.com"}, custom: {"boss@example.com"}}, false, true},
		{"namespaced claim, the verified mailbox spelled otherwise", "generic", map[string][]string{mapping.Email: {custom}},
			map[string][]string{"email": {"boss@example.com"}, custom: {" Boss@EXAMPLE.com "}}, false, true},
		{"the email claim itself", "generic", nil,
			map[string][]string{"email": {"boss@example.com"}}, false, true},
		// The pre-hijack case: an IdP that lets anyone claim an address
		// says so with email_verified false.
		{"the email claim itself, email_verified false", "generic", nil,
			map[string][]string{"email": {"boss@example.com"}, "email_verified": {"false"}}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			corp := e.idp(idp.ProtocolOIDC, "generic")
			corp.Name = "corp"
			boss := signInOK(t, e, corp, verifiedOIDC("corp", "sub-boss", "s1", map[string][]string{"email": {"boss@example.com"}}))

			m, err := mapping.New(tc.preset, idp.ProtocolOIDC, tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			social := &signin.IdP{Name: "social", Mapper: m, Rules: provision.Rules{JIT: true, LinkByEmail: true}}
			a := verifiedOIDC("social", "sub-m", "s2", tc.claims)
			a.EmailVerified = !tc.unverified
			out, err := e.svc.SignIn(context.Background(), social, a, "")
			if err != nil {
				t.Fatal(err)
			}
			linked := out.Session != nil && out.User != nil && out.User.ID == boss.ID
			if linked != tc.wantLinked {
				t.Errorf("signed in as %s's account: %v, want %v (outcome %+v)", boss.ID, linked, tc.wantLinked, out)
			}
			if !tc.wantLinked && (out.Denial == nil || out.Denial.Reason != provision.ReasonEmailConflict) {
				t.Errorf("denial = %+v, want %s", out.Denial, provision.ReasonEmailConflict)
			}
		})
	}
}

// TestSAMLTrustEmailVouchesForMappedEmail: SAML vouches for no address by
// itself; with the operator's trust_email (Assertion.EmailVerified) the
// mapped email is verified, whatever attribute it came from, and links to
// the account holding it; without, it is an email conflict.
func TestSAMLTrustEmailVouchesForMappedEmail(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprintf("trust_email %v", trusted), func(t *testing.T) {
			e := newEnv(t)
			corp := e.idp(idp.ProtocolOIDC, "generic")
			corp.Name = "corp"
			ada := signInOK(t, e, corp, verifiedOIDC("corp", "sub-ada", "s1", map[string][]string{"email": {"ada@example.com"}}))
			saml := e.idp(idp.ProtocolSAML, "okta")
			saml.Rules.LinkByEmail = true
			a := samlAssertion("link", "Lovelace", false) // email ada@example.com
			a.EmailVerified = trusted
			out, err := e.svc.SignIn(context.Background(), saml, a, "")
			if err != nil {
				t.Fatal(err)
			}
			linked := out.Session != nil && out.User != nil && out.User.ID == ada.ID
			if linked != trusted {
				t.Errorf("signed in as %s's account: %v, want %v (outcome %+v)", ada.ID, linked, trusted, out)
			}
			if !trusted && (out.Denial == nil || out.Denial.Reason != provision.ReasonEmailConflict) {
				t.Errorf("denial = %+v, want %s", out.Denial, provision.ReasonEmailConflict)
			}
		})
	}
}

// TestForceUpdateTakesOnlyVerifiedEmail: a force update takes an address
// from the user holding it (both only at this IdP) only when the IdP
// vouched for it: a mapped claim other than email is not, so the holder
// keeps the address and the signing-in user keeps theirs.
func TestForceUpdateTakesOnlyVerifiedEmail(t *testing.T) {
	const custom = "https://app.example/email"
	for _, tc := range []struct {
		name     string
		email    string // the email claim of the second sign-in
		wantTake bool
	}{
		{"another address verified", "mallory@evil.example", false},
		{"the address verified", "boss@example.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			m, err := mapping.New("generic", idp.ProtocolOIDC, map[string][]string{mapping.Email: {custom}})
			if err != nil {
				t.Fatal(err)
			}
			social := &signin.IdP{Name: "social", Mapper: m, Rules: provision.Rules{JIT: true, Update: provision.UpdateForce}}
			claims := func(email, mapped string) map[string][]string {
				return map[string][]string{"email": {email}, custom: {mapped}}
			}
			boss := signInOK(t, e, social, verifiedOIDC("social", "sub-boss", "s1", claims("boss@example.com", "boss@example.com")))
			signInOK(t, e, social, verifiedOIDC("social", "sub-m", "s2", claims("mallory@evil.example", "mallory@evil.example")))
			mallory := signInOK(t, e, social, verifiedOIDC("social", "sub-m", "s3", claims(tc.email, "boss@example.com")))

			var holder *store.User
			err = e.db.View(context.Background(), func(tx store.Tx) (err error) {
				holder, err = tx.User(boss.ID)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			took := mallory.Email == "boss@example.com"
			if took != tc.wantTake || took == (holder.Email == "boss@example.com") {
				t.Errorf("after the update: %s has %q, %s has %q; want the address taken: %v",
					mallory.ID, mallory.Email, holder.ID, holder.Email, tc.wantTake)
			}
		})
	}
}
