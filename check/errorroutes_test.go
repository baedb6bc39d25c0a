package check_test

import (
	"slices"
	"strings"
	"testing"
)

// TestCheckSSOInSubrouteErrorRoutes: an sso handler that only a
// subroute's error routes hold (a JSON config's "errors" of a subroute)
// still runs for that site, behind the site's host, so check lists the
// site and the values to register for it, the same rule the gateway's
// routeorder.Guards follows, rather than saying no site uses the IdP.
func TestCheckSSOInSubrouteErrorRoutes(t *testing.T) {
	const cf = "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\napp.example.com {\n\tsso okta\n\trespond app\n}\n"
	r := checkEdited(t, cf, func(srv map[string]any) {
		sub := srv["routes"].([]any)[0].(map[string]any)["handle"].([]any)[0].(map[string]any)
		if sub["handler"] != "subroute" {
			t.Fatalf("site's handler %v, want a subroute", sub["handler"])
		}
		sub["errors"] = map[string]any{"routes": sub["routes"]}
		sub["routes"] = []any{map[string]any{"handle": []any{map[string]any{"handler": "error", "status_code": 404}}}}
	})
	if got, want := r.IdPs[0].Sites, []string{"https://app.example.com"}; !slices.Equal(got, want) {
		t.Errorf("sites %q, want %q", got, want)
	}
	if got, want := fieldValues(r, "okta", "Redirect URI"), []string{"https://app.example.com/.sso/oidc/okta/callback"}; !slices.Equal(got, want) {
		t.Errorf("Redirect URI %q, want %q", got, want)
	}
	for _, c := range r.IdPs[0].Checks {
		if strings.Contains(c.Message, "no site uses this IdP") {
			t.Errorf("reported: %s", c.Message)
		}
	}
}
