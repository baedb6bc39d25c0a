package urlpath_test

import (
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/urlpath"
)

func TestSegments(t *testing.T) {
	for p, want := range map[string]bool{
		"scim/v2": true, ".sso": true, "a/b~c/d@e": true,
		"": false, "scim//v2": false, "scim/../v2": false, "./x": false,
		"scim v2": false, "scim/v2?x=1": false, "scim%2Fv2": false, "a#b": false, "a\nb": false,
	} {
		if got := urlpath.Segments(p); got != want {
			t.Errorf("Segments(%q) = %v, want %v", p, got, want)
		}
	}
}
