package saml

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// TestConfigCheck: each rule of Config.Check refuses its bad value with the
// setting named as the Caddyfile writes it, and New refuses it with the
// same words: one spelling per rule, whichever door the setting came in by.
func TestConfigCheck(t *testing.T) {
	srv, err := samltest.NewServer("https://idp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	good, err := srv.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	keys := testKeys()
	cases := []struct {
		name string
		cfg  func(c *Config)
		want string // "": accepted
	}{
		{"no metadata source", func(c *Config) { c.MetadataXML = nil }, "saml needs one of metadata_url, metadata_file or metadata"},
		{"two metadata sources", func(c *Config) { c.MetadataFile = "/etc/idp.xml" }, "the IdP metadata is already given: use one of metadata_url, metadata_file or metadata"},
		{"plain http metadata_url", func(c *Config) { c.MetadataXML, c.MetadataURL = nil, "http://idp.example.com/md" }, "metadata_url: "},
		{"request_binding artifact", func(c *Config) { c.RequestBinding = "artifact" }, `unknown request_binding "artifact" (expected one of: redirect, post)`},
		{"request_binding post", func(c *Config) { c.RequestBinding = BindingPost }, ""},
		{"three sp_cert", func(c *Config) { c.SPKeys = keys[:] }, "sp_cert may appear at most 2 times"},
		{"two sp_cert", func(c *Config) { c.SPKeys = keys[:2] }, ""},
		{"clock_skew above the maximum", func(c *Config) { c.ClockSkew = 5 * time.Minute }, "clock_skew 5m0s must be at most 3m0s"},
		{"clock_skew at the maximum", func(c *Config) { c.ClockSkew = MaxClockSkew }, ""},
		{"negative clock_skew", func(c *Config) { c.ClockSkew = -time.Second }, "clock_skew -1s must not be negative"},
		{"clock_skew without a unit", func(c *Config) { c.ClockSkew = 60 }, "clock_skew 60ns must be at least 1s"},
		{"negative metadata_refresh", func(c *Config) { c.MetadataRefresh = -time.Hour }, "metadata_refresh -1h0m0s must not be negative"},
		{"negative login timeout", func(c *Config) { c.LoginTimeout = -time.Minute }, "login timeout -1m0s must not be negative"},
		{"max_response_size too small", func(c *Config) { c.MaxResponseSize = MinResponseSizeCap - 1 }, "max_response_size 16383 bytes must be between 16 KiB and 16 MiB"},
		{"max_response_size too large", func(c *Config) { c.MaxResponseSize = MaxResponseSizeCap + 1 }, "max_response_size 16777217 bytes must be between 16 KiB and 16 MiB"},
		{"negative max_response_size", func(c *Config) { c.MaxResponseSize = -1 }, "max_response_size -1 bytes must be between 16 KiB and 16 MiB"},
		{"entity_id with spaces", func(c *Config) { c.EntityID = " https://sp.example.com " }, `entity_id " https://sp.example.com " must not have surrounding spaces`},
		{"empty authn_context", func(c *Config) { c.AuthnContext = []string{""} }, `authn_context "" must be a class reference URI, without spaces`},
		{"authn_context with a space", func(c *Config) { c.AuthnContext = []string{"urn:a b"} }, `authn_context "urn:a b" must be a class reference URI`},
		{"authn_context placeholder", func(c *Config) { c.AuthnContext = []string{"{env.AUTHN_CONTEXT}"} }, `authn_context "{env.AUTHN_CONTEXT}": values are literal`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Name: "x", MetadataXML: good, SPKeys: keys[:1]}
			tc.cfg(&cfg)
			checkErr := cfg.Check(nil)
			p, newErr := New(cfg)
			if tc.want == "" {
				if checkErr != nil || newErr != nil {
					t.Fatalf("refused: Check: %v; New: %v", checkErr, newErr)
				}
				p.Close()
				return
			}
			if checkErr == nil || !strings.Contains(checkErr.Error(), tc.want) {
				t.Fatalf("Check: %v, want %q", checkErr, tc.want)
			}
			if newErr == nil || newErr.Error() != `saml idp "x": `+checkErr.Error() {
				t.Fatalf("New: %v, want Check's words: %v", newErr, checkErr)
			}
		})
	}
}

// TestConfigCheckDeferred: a metadata URL to be resolved later (a
// placeholder) is left to New, and CheckSettings, which a parser calls
// line by line, asks for no metadata source.
func TestConfigCheckDeferred(t *testing.T) {
	placeholder := func(v string) bool { return strings.Contains(v, "{") }
	cfg := Config{MetadataURL: "{env.MD}"}
	if err := cfg.Check(placeholder); err != nil {
		t.Errorf("deferred metadata_url refused: %v", err)
	}
	if err := cfg.Check(nil); err == nil || !strings.Contains(err.Error(), "metadata_url: ") {
		t.Errorf("Check(nil) = %v, want the metadata_url refused", err)
	}
	if err := (Config{ClockSkew: time.Minute}).CheckSettings(placeholder); err != nil {
		t.Errorf("CheckSettings without a source: %v", err)
	}
}
