package check_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestCheckEntraMultiTenant: `caddy sso check` accepts Entra ID's
// organizations endpoint with tenants, whose discovery document names the
// issuer template …/{tenantid}/v2.0, rather than report an issuer
// mismatch.
func TestCheckEntraMultiTenant(t *testing.T) {
	op, err := oidctest.StartEntraMultiTenant("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })

	path := checkCaddyfile(t, "{\n\tsso {\n\t\tidp saas oidc {\n\t\t\tpreset entra\n\t\t\tissuer "+op.Issuer+
		"\n\t\t\ttenants aaaaaaaa-1111-4111-8111-111111111111\n\t\t\tclient_id app\n\t\t}\n\t}\n}\n\napp.example.com {\n\tsso saas\n\trespond app\n}\n")
	out, err := cli(context.Background(), "check", "--config", path)
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, out)
	}
	checkLines(t, out, "✓ issuer matches: "+op.Issuer, "✓ JWKS: 1 signing key(s)", "0 error(s)")
	if strings.Contains(out, "✗") {
		t.Errorf("unexpected error in:\n%s", out)
	}
}
