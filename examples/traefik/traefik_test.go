// Package traefik_test checks this directory's example as far as it can be
// without Traefik, which the project's tests cannot run (docs/forward-auth.md,
// "Traefik"): that its ForwardAuth middleware takes every identity header
// from the gateway's answer. The gateway's side of ForwardAuth (mode
// forward_auth) is tested through Caddy's forward_auth, which behaves alike
// (caddymodule's TestForwardAuthThroughCaddy).
package traefik_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/gateway"
)

// TestTraefikExampleCoversEveryIdentityHeader: authResponseHeaders lists
// every header no client may send, and Cookie; Traefik deletes each from
// the request before copying the gateway's.
func TestTraefikExampleCoversEveryIdentityHeader(t *testing.T) {
	raw, err := os.ReadFile("dynamic.yml")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	_, list, ok := strings.Cut(conf, "authResponseHeaders:\n")
	if !ok {
		t.Fatal("dynamic.yml has no authResponseHeaders")
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(list, "\n") {
		item, ok := strings.CutPrefix(strings.TrimSpace(line), "- ")
		if !ok {
			break
		}
		listed[strings.ToLower(item)] = true
	}
	for _, h := range append(gateway.ProtectedHeaders(), "Cookie") {
		if !listed[strings.ToLower(h)] {
			t.Errorf("authResponseHeaders lacks %s", h)
		}
	}
	for _, want := range []string{
		`address: "http://127.0.0.1:9091/verify"`,
		"trustForwardHeader: false",
		"middlewares: [sso]",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("dynamic.yml lacks %s", want)
		}
	}
	// The gateway's own router must outrank the app's (Traefik orders
	// routers by rule length), or /.sso/ would need a session first.
	rules := regexp.MustCompile(`(?m)^\s+rule: "(.*)"$`).FindAllStringSubmatch(conf, -1)
	if len(rules) != 2 || !strings.Contains(rules[0][1], "PathPrefix(`/.sso/`)") || len(rules[0][1]) <= len(rules[1][1]) {
		t.Errorf("routers: %v", rules)
	}
}
