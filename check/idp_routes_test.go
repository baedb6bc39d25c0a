package check_test

// `caddy sso check` lists the URLs an IdP administrator registers; they
// must be the ones the running gateway answers at, so check reads a route's
// IdPs and path prefix through caddymodule.Handler.Endpoints and builds the
// URLs with gateway.EndpointBase, as the gateway does.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sso/caddy-sso/check"
	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
)

// checkJSON runs `caddy sso check --json` on the config at path.
func checkJSON(t *testing.T, path string) *check.Report {
	t.Helper()
	out, err := cli(context.Background(), "check", "--config", path, "--json")
	var r check.Report // the report, then the error line when it has errors
	if jerr := json.NewDecoder(strings.NewReader(out)).Decode(&r); jerr != nil {
		t.Fatalf("check --json: %v, %v\n%s", err, jerr, out)
	}
	return &r
}

// fieldValues lists the values check printed for field of IdP name.
func fieldValues(r *check.Report, name, field string) []string {
	var out []string
	for _, ic := range r.IdPs {
		for _, v := range ic.Values {
			if ic.Name == name && v.Field == field {
				out = append(out, v.Value)
			}
		}
	}
	return out
}

// TestCheckRoutesMatchGateway: for a route that names its IdP twice, and
// one that names none where the app has one (under its own path prefix),
// check lists each URL once, and they are where the running gateway
// answers: the test IdP accepts only the Redirect URI check printed, and
// the other endpoints it printed (each one oidc.Endpoints lists) are the
// gateway's, not the upstream's.
func TestCheckRoutesMatchGateway(t *testing.T) {
	for _, tc := range []struct{ name, directive, prefix string }{
		{"same IdP twice", "\tsso test test\n", "/.sso/"},
		{"none named, the app's only one", "\tsso {\n\t\tpath_prefix /auth/\n\t}\n", "/auth/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := caddytest.NewOIDC(t, "\t\t\tjit\n")
			w.Sites = w.GW.Base + " {\n" + tc.directive + "\treverse_proxy " + w.Upstream.HostPort() + "\n}\n"
			path := checkCaddyfile(t, w.Caddyfile())
			r := checkJSON(t, path)
			if !r.OK {
				t.Fatalf("check found errors: %+v", r)
			}
			site, err := idp.ParseOrigin(w.GW.Base)
			if err != nil {
				t.Fatal(err)
			}
			base := gateway.EndpointBase(site, tc.prefix, idp.ProtocolOIDC, "test")
			redirect := fieldValues(r, "test", "Redirect URI")
			if len(redirect) != 1 || redirect[0] != base+idp.OIDCCallbackEndpoint {
				t.Fatalf("Redirect URI listed as %q, want once %q", redirect, base+idp.OIDCCallbackEndpoint)
			}
			// The IdP knows the gateway by what check printed, and by nothing else.
			w.IdP.RegisterClient(oidctest.Client{ID: caddytest.ClientID, Secret: caddytest.ClientSecret, RedirectURIs: redirect})
			w.Start()
			b := caddytest.NewBrowser(t)
			if saw := caddytest.UpstreamSaw(t, b.SignIn(w.GW.Base+"/", "ada", "ada-pw")); saw.Header("X-Forwarded-User") == "" {
				t.Fatalf("signed in, but no identity upstream: %+v", saw)
			}
			// Signed in, a URL the gateway did not serve would reach the
			// upstream; back-channel first, as front-channel may end the session.
			// Every endpoint the protocol lists is printed (back-channel
			// is listed before front-channel).
			for _, ep := range gateway.ProtocolEndpoints(idp.ProtocolOIDC) {
				field := ep.Field
				urls := fieldValues(r, "test", field)
				if len(urls) != 1 || urls[0] != base+ep.Name {
					t.Fatalf("%s listed as %q, want once %s", field, urls, base+ep.Name)
				}
				resp := b.Get(urls[0])
				body := caddytest.ReadBody(t, resp)
				t.Logf("%s %s: %s", field, urls[0], resp.Status)
				if resp.StatusCode == http.StatusNotFound || strings.Contains(body, `"headers"`) {
					t.Errorf("%s %s: not the gateway's endpoint: %s %s", field, urls[0], resp.Status, body)
				}
			}
		})
	}
}

// TestCheckRoutesRepeatedIdPs: a JSON config whose sso handler repeats IdP
// names in idp and idps gets each name's values and problems once, as the
// gateway dedupes them (caddymodule.Handler.Endpoints).
func TestCheckRoutesRepeatedIdPs(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Close() })
	caddyfile := "{\n\tsso {\n\t\tidp corp oidc {\n\t\t\tissuer " + op.Issuer + "\n\t\t\tclient_id app\n\t\t}\n\t}\n}\n\napp.example.com {\n\tsso corp\n\trespond app\n}\n"
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	const named = `"handler":"sso","idp":"corp"`
	if !strings.Contains(string(cfg), named) {
		t.Fatalf("adapted config lacks %s:\n%s", named, cfg)
	}
	repeated := strings.Replace(string(cfg), named, named+`,"idps":["corp","ghost","ghost"]`, 1)
	path := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(path, []byte(repeated), 0o600); err != nil {
		t.Fatal(err)
	}
	r := checkJSON(t, path)
	want := "https://app.example.com/.sso/oidc/corp/" + idp.OIDCCallbackEndpoint
	if got := fieldValues(r, "corp", "Redirect URI"); len(got) != 1 || got[0] != want {
		t.Errorf("Redirect URI listed as %q, want once %q", got, want)
	}
	ghost := 0
	for _, p := range r.Problems {
		if strings.Contains(p.Message, `names IdP "ghost"`) {
			ghost++
		}
	}
	if ghost != 1 {
		t.Errorf("the unknown IdP named twice is reported %d times, want once: %+v", ghost, r.Problems)
	}
}
