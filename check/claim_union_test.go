package check_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/mapping"
)

// TestCheckSaysGroupsAreAUnion: an operator's `map groups` with several
// names reads all of them and joins their values; the report says so
// (Union, and "all of them: their union" in print), where every other
// attribute is read from the first name present, so that the IdP
// administrator sends every one of them, not just the first.
func TestCheckSaysGroupsAreAUnion(t *testing.T) {
	r, out := checkAdapted(t, "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t\tmap groups groups roles\n\t\t\tmap email mail upn\n\t\t}\n\t}\n}\napp.example.com {\n\tsso okta\n\trespond app\n}\n")
	for _, cl := range r.IdPs[0].Claims {
		switch cl.Attribute {
		case mapping.Groups:
			if !cl.Union || !slices.Equal(cl.Names, []string{"groups", "roles"}) {
				t.Errorf("groups claims = %q, union %v; want [groups roles], union", cl.Names, cl.Union)
			}
		case mapping.Email:
			if cl.Union || !slices.Equal(cl.Names, []string{"mail", "upn"}) {
				t.Errorf("email claims = %q, union %v; want [mail upn], first present", cl.Names, cl.Union)
			}
		}
	}
	if !strings.Contains(out, "groups, roles (all of them: their union)") {
		t.Errorf("the report does not say the groups claims are a union:\n%s", out)
	}
	if strings.Contains(out, "mail, upn (all of them") {
		t.Errorf("the report calls the email claims a union:\n%s", out)
	}
}
