package check_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/check"
	"github.com/caddy-sso/caddy-sso/mapping"
)

// TestCheckSiteOriginsAutoHTTPSOff: with automatic HTTPS disabled a
// server is served over TLS exactly when it has TLS connection policies,
// and the printed origin follows. The Caddyfile's auto_https off keeps a
// policy for a site on a host name (Caddy still serves it over TLS, with
// certificates it no longer manages), so its values stay https; a JSON
// config that disables automatic HTTPS and gives no policy is plain http
// on its port, with the plain-http warning.
func TestCheckSiteOriginsAutoHTTPSOff(t *testing.T) {
	const cf = "{\n\tauto_https off\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\napp.example.com {\n\tsso okta\n\trespond app\n}\n"
	for _, tc := range []struct {
		name string
		edit func(srv map[string]any)
		want string
	}{
		{"Caddyfile, a TLS policy kept", func(map[string]any) {}, "https://app.example.com"},
		{"JSON without TLS policies", func(srv map[string]any) { delete(srv, "tls_connection_policies") }, "http://app.example.com:443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkEdited(t, cf, func(srv map[string]any) {
				if ah, _ := srv["automatic_https"].(map[string]any); ah["disable"] != true || srv["tls_connection_policies"] == nil {
					t.Fatalf("adapted server %v: want automatic_https disabled and a TLS policy", srv)
				}
				tc.edit(srv)
			})
			if got := r.IdPs[0].Sites; !slices.Equal(got, []string{tc.want}) {
				t.Errorf("sites %q, want %q", got, tc.want)
			}
			if v := fieldValues(r, "okta", "Redirect URI"); !slices.Equal(v, []string{tc.want + "/.sso/oidc/okta/callback"}) {
				t.Errorf("Redirect URI %q, want %s/.sso/oidc/okta/callback", v, tc.want)
			}
			plain := hasFinding(r.Problems, "warning: server srv0: site http://app.example.com:443 is served over plain http")
			if want := strings.HasPrefix(tc.want, "http:"); plain != want {
				t.Errorf("plain http warning %v, want %v: %v", plain, want, r.Problems)
			}
		})
	}
}

// checkEdited adapts the Caddyfile cf, lets edit change its server srv0
// as a JSON config could have it, and runs the check on the result.
func checkEdited(t *testing.T, cf string, edit func(srv map[string]any)) *check.Report {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["srv0"].(map[string]any))
	if cfg, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	r, err := check.Run(context.Background(), cfg, &http.Client{Timeout: time.Second}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCheckSiteOriginUnixListenerFirst: a server of a JSON config that
// listens on a unix socket before its TCP port is reached by browsers on
// that port, so the port is in the printed origin (the socket, which has
// none, is skipped), as it is in the Redirect URI the gateway sends.
func TestCheckSiteOriginUnixListenerFirst(t *testing.T) {
	cf := "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\napp.example.com:8443 {\n\tsso okta\n\trespond app\n}\n"
	sock := "unix/" + filepath.Join(t.TempDir(), "caddy.sock")
	r := checkEdited(t, cf, func(srv map[string]any) {
		if got, _ := srv["listen"].([]any); len(got) != 1 || got[0] != ":8443" {
			t.Fatalf("adapted listen %v, want [:8443]", srv["listen"])
		}
		srv["listen"] = []string{sock, ":8443"}
	})
	const want = "https://app.example.com:8443"
	if got := r.IdPs[0].Sites; !slices.Equal(got, []string{want}) {
		t.Errorf("sites %q, want %q", got, want)
	}
	if v := fieldValues(r, "okta", "Redirect URI"); !slices.Equal(v, []string{want + "/.sso/oidc/okta/callback"}) {
		t.Errorf("Redirect URI %q, want %s/.sso/oidc/okta/callback", v, want)
	}
}

// TestCheckSiteListedOnce: a site whose routes use the same IdP more than
// once (an sso directive in two handle blocks) is one registration at the
// IdP: the site and each value are listed once.
func TestCheckSiteListedOnce(t *testing.T) {
	r := checkOkta(t, "", "app.example.com {\n\thandle /admin/* {\n\t\tsso okta\n\t\trespond admin\n\t}\n\thandle {\n\t\tsso okta\n\t\trespond app\n\t}\n}\n")
	if got, want := r.IdPs[0].Sites, []string{"https://app.example.com"}; !slices.Equal(got, want) {
		t.Errorf("sites %q, want %q", got, want)
	}
	for _, field := range []string{"Redirect URI", "Post-logout redirect URI", "Back-channel logout URI", "Front-channel logout URL"} {
		if v := fieldValues(r, "okta", field); len(v) != 1 {
			t.Errorf("%s listed %d times: %q", field, len(v), v)
		}
	}
}

// TestCheckListsEveryAttribute: the claims to map cover every attribute
// sign-in reads, groups too (the rules and default_groups depend on it),
// in the order the report prints them, each with the names it is read
// from.
func TestCheckListsEveryAttribute(t *testing.T) {
	r, out := checkAdapted(t, "{\n\tsso {\n\t\tidp okta oidc {\n\t\t\tissuer http://127.0.0.1:1\n\t\t\tclient_id abc\n\t\t}\n\t}\n}\napp.example.com {\n\tsso okta\n\trespond app\n}\n")
	var attrs []string
	for _, cl := range r.IdPs[0].Claims {
		attrs = append(attrs, cl.Attribute)
		if len(cl.Names) == 0 {
			t.Errorf("%s has no claim names", cl.Attribute)
		}
	}
	if want := []string{mapping.UniqueUserID, mapping.FirstName, mapping.LastName, mapping.Email, mapping.Groups}; !slices.Equal(attrs, want) {
		t.Errorf("claims for %q, want %q", attrs, want)
	}
	if !strings.Contains(out, "\n    groups ") {
		t.Errorf("the report does not print the groups claim:\n%s", out)
	}
}

// TestCheckProblemsOncePerServer: a problem of a server or a site is
// reported once however many sso routes share it (two handle blocks, two
// sites of one listener, two path prefixes), so that the error and warning
// counts, and the exit status they set, count problems to fix.
func TestCheckProblemsOncePerServer(t *testing.T) {
	const handles = "\thandle /admin/* {\n\t\tsso okta%s\n\t\trespond admin\n\t}\n\thandle {\n\t\tsso okta\n\t\trespond app\n\t}\n}\n"
	for _, tc := range []struct{ name, sites, finding string }{
		{"no host, two sso routes", ":8443 {\n" + fmt.Sprintf(handles, ""), "error: server srv0: an sso route matches no host"},
		{"verify endpoint, two sites on its listener",
			"http://app.localhost:9091 {\n\tsso okta {\n\t\tmode auth_request\n\t}\n}\nhttp://wiki.localhost:9091 {\n\tsso okta {\n\t\tmode auth_request\n\t}\n}\n",
			"error: server srv0: its mode auth_request endpoint answers only for"},
		{"plain http, two path prefixes", "http://app.example.com:8080 {\n" + fmt.Sprintf(handles, " {\n\t\t\tpath_prefix /admin/.sso/\n\t\t}"),
			"warning: server srv0: site http://app.example.com:8080 is served over plain http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkOkta(t, "", tc.sites)
			n := 0
			for _, p := range r.Problems {
				if hasFinding([]check.Finding{p}, tc.finding) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%q reported %d times, want once: %v", tc.finding, n, r.Problems)
			}
		})
	}
}
