package check_test

import (
	"slices"
	"strings"
	"testing"
)

// TestCheckNestedHostGuards: when host matchers nest (a site for two
// hosts whose sso runs only under a handle for one of them), the site
// listed, and the values to enter at the IdP, are those of the innermost
// host matcher, the only host requests reach the sso handler on; the
// other site's values would be registered for nothing.
func TestCheckNestedHostGuards(t *testing.T) {
	r := checkOkta(t, "", "app.example.com, www.example.com {\n\t@app host app.example.com\n\thandle @app {\n\t\tsso okta\n\t\trespond app\n\t}\n\trespond www\n}\n")
	if got, want := r.IdPs[0].Sites, []string{"https://app.example.com"}; !slices.Equal(got, want) {
		t.Errorf("sites %q, want %q", got, want)
	}
	if got := fieldValues(r, "okta", "Redirect URI"); len(got) != 1 || !strings.HasPrefix(got[0], "https://app.example.com/") {
		t.Errorf("Redirect URIs %q, want one, on https://app.example.com", got)
	}
}
