package caddymodule

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
)

// caddyReplaces is the oracle: whether Caddy's own replacer, as resolve
// calls it (a key it does not know stays as written, and the scan goes on
// inside it), replaces part of s, a sentinel standing for every
// {namespace.name} it finds.
func caddyReplaces(s string) bool {
	r := caddy.NewEmptyReplacer()
	r.Map(func(key string) (any, bool) { return "\x00", strings.IndexByte(key, '.') > 0 })
	return strings.Contains(r.ReplaceKnown(s, ""), "\x00")
}

// idp.HasPlaceholder, which the packages below caddymodule use without
// importing Caddy, is true only for what Caddy's replacer would replace: a
// {namespace.name}, found by its rules (review 22, item 4). A literal
// brace in a secret is part of the secret. The table, then random strings
// of the characters that matter, are held to Caddy's replacer itself.
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
		{`{a\}.b}`, true},        // an escaped closing brace inside the key
		{`{a\}`, false},          // the last } closes, escaped or not: key "a\"
		{"{a{env.X}", true},      // the key runs from the first {: "a{env.X"
		{"plain-secret", false},
	} {
		if got := idp.HasPlaceholder(c.s); got != c.want || caddyReplaces(c.s) != c.want {
			t.Errorf("%q: idp.HasPlaceholder = %v, Caddy's replacer %v, want %v", c.s, got, caddyReplaces(c.s), c.want)
		}
	}
	rnd := rand.New(rand.NewPCG(33, 2))
	const alphabet = `{}\.a`
	for range 20000 {
		b := make([]byte, rnd.IntN(12))
		for i := range b {
			b[i] = alphabet[rnd.IntN(len(alphabet))]
		}
		if s := string(b); idp.HasPlaceholder(s) != caddyReplaces(s) {
			t.Fatalf("%q: idp.HasPlaceholder = %v, Caddy's replacer %v", s, idp.HasPlaceholder(s), caddyReplaces(s))
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
