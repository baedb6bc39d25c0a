package caddymodule_test

import (
	"fmt"
	"strings"
	"testing"
)

// foldedName folds a header name as the gateway strips them: any letter
// case, '_' and '.' for '-'.
func foldedName(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// A header name one route owns (header user X-App-User, pass_access_token
// X-Upstream-At) is stripped on every sso route of the config: a sibling
// route to the same app, with the default headers, hands on no client copy
// of it, in any spelling. docs/security.md tells operators to rename a field
// "so that the gateway owns it".
//
// Caddy drops inbound header names with '_' or '.' unless its servers
// option expects them, and then drops their '-' spelling: the '-'
// spellings are sent to a default Caddy, the others to one that expects
// them, as a CGI or PHP app's site would.
func TestSiblingRouteStripsOwnedHeaders(t *testing.T) {
	for _, c := range []struct {
		name, servers string
		spellings     []string
	}{
		{"dashes", "", []string{"X-App-User", "x-app-user", "X-UPSTREAM-AT"}},
		{"underscores and dots", "\tservers {\n\t\texpected_underscore_headers x_app_user x_upstream_at\n\t\texpected_dot_headers x.app.user x.upstream.at\n\t}\n",
			[]string{"X_App_User", "x.APP.user", "x_upstream_at", "X.Upstream.At"}},
	} {
		t.Run(c.name, func(t *testing.T) { checkSiblingRouteStrips(t, c.servers, c.spellings) })
	}
}

func checkSiblingRouteStrips(t *testing.T, servers string, spellings []string) {
	g := newGateway(t)
	alpha := startOP(t, "ada@alpha.example", g.base+"/.sso/oidc/alpha/callback", g.base+"/admin/.sso/oidc/alpha/callback")
	up := newEchoUpstream(t).hostPort()
	g.start("{\n" + servers + strings.TrimPrefix(g.caddyfile(oidcIdPBlock("alpha", alpha), fmt.Sprintf(`%[1]s {
	handle /admin/* {
		sso alpha {
			path_prefix /admin/.sso/
			header user X-App-User
			pass_access_token X-Upstream-At
		}
		reverse_proxy %[2]s
	}
	handle {
		sso alpha
		reverse_proxy %[2]s
	}
}
`, g.base, up)), "{\n"))
	b := newBrowser(t)
	signedIn := upstreamSaw(t, b.signIn(g.base+"/", "ada", "ada-pw"))
	userID := signedIn.header("X-Forwarded-User")
	if userID == "" {
		t.Fatalf("no X-Forwarded-User after sign-in: %v", signedIn.Headers)
	}
	owned := []string{"X-App-User", "X-Upstream-At"}
	var forged []string
	for _, name := range spellings {
		forged = append(forged, name, "forged")
	}
	for _, path := range []string{"/page", "/admin/x"} {
		saw := upstreamSaw(t, b.get(g.base+path, forged...))
		for k, v := range saw.Headers {
			for _, o := range owned {
				if foldedName(k) == foldedName(o) && strings.Contains(strings.Join(v, ","), "forged") {
					t.Errorf("%s: the app received the client's %s: %q (a name the /admin/* route owns)", path, k, v)
				}
			}
		}
		if got := saw.header("X-Forwarded-User"); path == "/page" && got != userID {
			t.Errorf("%s: X-Forwarded-User = %q, want %q", path, got, userID)
		}
		if path == "/admin/x" && (saw.header("X-App-User") != userID || saw.header("X-Upstream-At") == "") {
			t.Errorf("%s: X-App-User = %q, X-Upstream-At = %q, want the gateway's (%s, the access token)",
				path, saw.header("X-App-User"), saw.header("X-Upstream-At"), userID)
		}
	}
}
