package signin_test

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/signin"
)

// TestObserveCommitted: Observe (the metrics' caddy_sso_logins_total and
// jit_total) is told every committed sign-in's outcome, under the IdP's
// name: the first creates a session, its replay is a refusal.
func TestObserveCommitted(t *testing.T) {
	e := newEnv(t)
	var seen []string
	e.svc.Observe = func(idpName string, o *signin.Outcome) {
		switch {
		case o.Session != nil && o.Result != nil && o.Result.Created:
			seen = append(seen, idpName+": created")
		case o.Replay != nil:
			seen = append(seen, idpName+": "+o.Replay.Code)
		default:
			seen = append(seen, idpName+": other")
		}
	}
	p := e.idp(idp.ProtocolSAML, "okta")
	a := samlAssertion("observed", "Lovelace", false)
	for range 2 {
		if _, err := e.svc.SignIn(context.Background(), p, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 || seen[0] != "saml-idp: created" || seen[1] != "saml-idp: saml_replayed" {
		t.Errorf("observed %q, want the sign-in then its replay", seen)
	}
}
