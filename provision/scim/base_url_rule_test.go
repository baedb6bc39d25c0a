package scim_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision/scim"
)

// TestBaseURLRule: sso_scim's base_url is held to the sso handler's
// base_url rule (https, or plain http on a loopback host, a real port, no
// fragment or credentials), with a path, and without a query, which would
// swallow the "/Users/<id>" of every Location built on it.
func TestBaseURLRule(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "" accepts
	}{
		{"https://id.example.com/scim", ""},
		{"https://id.example.com:8443/scim/v2/", ""},
		{"http://127.0.0.1:8080/scim", ""},
		{"https://id.example.com/scim?x=1", "without a query"},
		{"https://id.example.com/scim?", "without a query"},
		{"https://id.example.com/scim#top", "without fragment"},
		{"https://user:pw@id.example.com/scim", "without fragment or credentials"},
		{"https://id.example.com:0/scim", "the port must be 1-65535"},
		{"http://id.example.com/scim", "must be https"},
		{"scim.example.com/scim", "not an absolute http(s) URL"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			err := scim.Endpoint{BaseURL: tc.url}.CheckSettings(braced)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckSettings = %v, want %q", err, tc.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "base_url ") {
				t.Errorf("the error does not name the setting: %v", err)
			}
		})
	}
}
