package saml

import (
	"errors"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// TestSessionNotOnOrAfter: an AuthnStatement's SessionNotOnOrAfter bounds
// the session the assertion may start (SAML Core 2.7.2). One that has
// passed, beyond the clock skew, is refused like any other expired
// assertion time (saml_expired); otherwise the assertion carries the
// earliest bound, with the skew, for the sign-in to end its session by
// (so that one accepted within the skew does not start already ended).
func TestSessionNotOnOrAfter(t *testing.T) {
	// Whole seconds: the XML carries what the test compares.
	now := time.Now().Truncate(time.Second)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	const skew = idp.DefaultClockSkew // the harness's
	cases := []struct {
		name   string
		bounds []*time.Time // one AuthnStatement each; nil: no attribute
		want   string       // refusal code; "" accepted
		carry  time.Time    // the accepted assertion's SessionNotOnOrAfter
	}{
		{name: "absent", bounds: []*time.Time{nil}, carry: time.Time{}},
		{name: "30 minutes ahead", bounds: []*time.Time{at(30 * time.Minute)}, carry: now.Add(30*time.Minute + skew)},
		{name: "earliest of two statements", bounds: []*time.Time{at(40 * time.Minute), nil, at(20 * time.Minute)}, carry: now.Add(20*time.Minute + skew)},
		{name: "10 minutes ago", bounds: []*time.Time{at(-10 * time.Minute)}, want: CodeExpired},
		{name: "2 minutes ago, beyond ClockSkew", bounds: []*time.Time{at(-2 * time.Minute)}, want: CodeExpired},
		{name: "one statement of two passed", bounds: []*time.Time{at(time.Hour), at(-10 * time.Minute)}, want: CodeExpired},
		{name: "20 seconds ago, within ClockSkew", bounds: []*time.Time{at(-20 * time.Second)}, carry: now.Add(-20*time.Second + skew)},
	}
	h := newHarness(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pend := h.begin(t)
			spec := h.spec(pend)
			spec.Assertion = func(a *saml.Assertion) {
				first := a.AuthnStatements[0]
				a.AuthnStatements = nil
				for _, b := range tc.bounds {
					st := first
					st.SessionNotOnOrAfter = b
					a.AuthnStatements = append(a.AuthnStatements, st)
				}
			}
			a, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q, want %q (err: %v)", got, tc.want, err)
			}
			if tc.want != "" {
				var le *idp.LoginError
				if a != nil || !errors.As(err, &le) || !le.Bound {
					t.Fatalf("refusal: assertion %+v, error %#v; want none, and a LoginError bound to the login", a, err)
				}
				return
			}
			if a == nil || a.Subject != "ada" {
				t.Fatalf("accepted assertion = %+v", a)
			}
			if !a.SessionNotOnOrAfter.Equal(tc.carry) {
				t.Errorf("SessionNotOnOrAfter = %v, want %v", a.SessionNotOnOrAfter, tc.carry)
			}
		})
	}
}

// TestSessionNotOnOrAfterThroughIdP: the local IdP, through a browser,
// vouching for a session that ended five minutes ago: the login is refused.
func TestSessionNotOnOrAfterThroughIdP(t *testing.T) {
	h := newHarness(t)
	h.idp.AddUser(oktaUser)
	past := time.Now().Add(-5 * time.Minute)
	h.idp.SetHooks(samltest.Hooks{Assertion: func(a *saml.Assertion) {
		for i := range a.AuthnStatements {
			a.AuthnStatements[i].SessionNotOnOrAfter = &past
		}
	}})
	res := h.login(newBrowser(t), "ada", "pw", "/app")
	if res.Code != CodeExpired || res.Assertion != nil {
		t.Fatalf("code = %q, assertion %+v; want %q and none", res.Code, res.Assertion, CodeExpired)
	}
}
