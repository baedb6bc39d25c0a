package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Behind a TLS-terminating balancer listed in trusted_proxies
// (docs/cluster.md), Location and meta.location are built on the origin
// the client used, X-Forwarded-Proto and -Host, as the sso handler builds
// its URLs; from a peer Caddy does not trust those headers are ignored,
// and base_url, when set, wins over both.
func TestSCIMLocationHonoursTrustedProxies(t *testing.T) {
	for _, c := range []struct {
		name, trusted, baseURL, want string
	}{
		{"trusted", "127.0.0.1/32", "", "https://scim.example.com/scim/v2/"},
		{"not trusted", "192.0.2.0/24", "", "{base}/scim/v2/"},
		{"base_url wins", "127.0.0.1/32", "https://provision.example.net/scim/v2", "https://provision.example.net/scim/v2/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var more []string
			if c.baseURL != "" {
				more = append(more, "base_url "+c.baseURL)
			}
			g, cf := scimSite(t, more...)
			if !strings.Contains(cf, "\tskip_install_trust\n") {
				t.Fatal("the harness's global options changed: no skip_install_trust line to put servers after")
			}
			cf = strings.Replace(cf, "\tskip_install_trust\n", "\tskip_install_trust\n\tservers {\n\t\ttrusted_proxies static "+c.trusted+"\n\t}\n", 1)
			g.start(cf)
			want := strings.ReplaceAll(c.want, "{base}", g.base)
			req, _ := http.NewRequest("POST", g.base+"/scim/v2/Users", strings.NewReader(`{"userName":"lb@example.com","externalId":"ext-lb"}`))
			req.Header.Set("Authorization", "Bearer "+scimTokenOkta)
			req.Header.Set("Content-Type", "application/scim+json")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Forwarded-Host", "scim.example.com")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusCreated {
				t.Fatalf("POST /Users: %d %v", res.StatusCode, err)
			}
			loc := res.Header.Get("Location")
			if !strings.HasPrefix(loc, want) {
				t.Errorf("Location %q, want it under %s", loc, want)
			}
			if got := at(body, "meta", "location"); got != loc {
				t.Errorf("meta.location %v, Location %q: they must be the same URL", got, loc)
			}
		})
	}
}
