//go:build unix

// Unix only: the Traefik build is serialized across test processes with flock (build_test.go).

package traefik_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/exampletest"
)

// TestTraefikFormAfterSessionEnded: a form a person submits through
// Traefik after their session ended. ForwardAuth hands the gateway's
// refusal to the browser as it is, so the person sees the sign_in_again
// page (401), as behind the sso directive, whose sign-in returns to the
// form's page (the Referer), and the app does not get the POST.
func TestTraefikFormAfterSessionEnded(t *testing.T) {
	site, b := startExample(t, nil, nil)
	resp, body := exampletest.PostOrderForm(t, b.NoRedirects(), site)
	href := strings.ToLower(`href="` + site + "/.sso/login?return_to=" + url.QueryEscape("/orders/new?draft=1") + `"`)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "<h1>Sign in again</h1>") || !strings.Contains(strings.ToLower(body), href) {
		t.Errorf("a form posted without a session: %s %q, want the sign_in_again page (401) with %s:\n%s",
			resp.Status, resp.Header.Get("Content-Type"), href, body)
	}
	if strings.Contains(body, `"headers"`) {
		t.Errorf("the app got the form: %s", body)
	}
}
