package caddymodule

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// hasPlaceholder is true only for what Caddy's replacer would replace: a
// {namespace.name}, found by its rules (review 22, item 4). A literal
// brace in a secret is part of the secret.
func TestHasPlaceholderAsCaddyReplaces(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"{env.OIDC_CLIENT_SECRET}", true},
		{"prefix-{env.X}-suffix", true},
		{"{file./run/secrets/oidc}", true},
		{"https://{env.HOST}/oauth2/default", true},
		{"s3cr{t-written-in-the-config", false}, // unclosed
		{"s3cr}t", false},
		{"ab{cd}ef", false},      // no namespace
		{"{}", false},            // no name
		{"{.x}", false},          // no namespace
		{`s3cr\{env.X}t`, false}, // escaped: Caddy writes {env.X} as it is
		{`a\{b}{env.X}`, true},   // an escaped brace, then a placeholder
		{"plain-secret", false},
	} {
		if got := hasPlaceholder(c.s); got != c.want {
			t.Errorf("hasPlaceholder(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}

// A secret with a literal brace is a secret written into the config: it
// is warned about, and held to the rules of a literal one at adapt.
func TestLiteralBraceSecretIsLiteral(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	warnWritten(zap.New(core), "s3cr{t-written-in-the-config", "the client secret", "{env.OIDC_CLIENT_SECRET}")
	if logs.Len() != 1 {
		t.Errorf("a secret with a literal { was not warned about (%d warnings)", logs.Len())
	}
	c := &IdPConfig{Name: "x", Protocol: "oidc", OIDC: &OIDCConfig{Issuer: "https://idp.example.com", ClientID: "a",
		ClientSecret: "short{secret", Algorithms: []string{"HS256"}}}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Errorf("HS256 with the short literal secret short{secret: validate = %v, want the 32-byte refusal", err)
	}
	c.OIDC.ClientSecret = "{env.OIDC_CLIENT_SECRET}" // resolved at start, checked then
	if err := c.validate(); err != nil {
		t.Errorf("HS256 with a placeholder secret: validate = %v", err)
	}
}
