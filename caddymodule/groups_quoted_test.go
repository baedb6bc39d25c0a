package caddymodule_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestGroupsHeaderQuotedName: a group named `"admins"`, quotes included
// (an IdP's administrator or a SCIM client may name one so), reaches the
// app percent-encoded, so that an app reading X-Forwarded-Groups as an
// HTTP list (Werkzeug's and requests' parse_list_header unquote an
// element) never sees admins; the identity token keeps the exact names.
func TestGroupsHeaderQuotedName(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	want := []string{`"admins"`, `back\slash`, "eng"}
	w.idp.AddUser("mallory", "mallory-pw", map[string]any{
		"sub": "sub-mallory", "given_name": "Mallory", "family_name": "M", "email": "mallory@example.com",
		"email_verified": true, "groups": want,
	})
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tidentity_jwt\n\t}\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "mallory", "mallory-pw"))

	got := saw.header("X-Forwarded-Groups")
	if decoded := decodeGroups(t, got); !sameSet(decoded, want) {
		t.Errorf("X-Forwarded-Groups %q decodes to %q, want %q", got, decoded, want)
	}
	if !sameSet(strings.Split(got, ","), []string{"%22admins%22", `back%5Cslash`, "eng"}) {
		t.Errorf("X-Forwarded-Groups = %q, want the quote and the backslash percent-encoded", got)
	}
	_, claims, err := verifyWithJWKS(t, w.gw.base+"/.sso/jwks.json", saw.header("X-Forwarded-Identity-Jwt"), w.gw.base, w.gw.base)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(claims.Groups, want) || slices.Contains(claims.Groups, "admins") {
		t.Errorf("identity token groups %q, want exactly %q", claims.Groups, want)
	}
}
