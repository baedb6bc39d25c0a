package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

// TestSignerConfigValidate: a signing key signs at least as long as a
// token lives (the JWKS publishes only the previous, current and next
// keys), counting the defaults (ttl 5m, key_rotation 168h) for unset
// fields; the header follows the header-name rule.
func TestSignerConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    SignerConfig
		want string // "" accepts
	}{
		{"defaults", SignerConfig{}, ""},
		{"default rotation, long ttl", SignerConfig{TTL: 24 * time.Hour}, ""},
		{"rotation equal to ttl", SignerConfig{TTL: time.Hour, Rotation: time.Hour}, ""},
		{"rotation equal to the default ttl", SignerConfig{Rotation: DefaultIdentityJWTTTL}, ""},
		{"rotation shorter than ttl", SignerConfig{TTL: time.Hour, Rotation: time.Minute},
			"identity_jwt key_rotation 1m0s is shorter than ttl 1h0m0s"},
		{"rotation shorter than the default ttl", SignerConfig{Rotation: time.Minute}, "key_rotation 1m0s is shorter than ttl 5m0s"},
		{"ttl longer than the default rotation", SignerConfig{TTL: upstreamjwt.DefaultRotation + time.Second}, "is shorter than ttl"},
		{"negative ttl", SignerConfig{TTL: -time.Second}, "must be positive"},
		{"negative rotation", SignerConfig{Rotation: -time.Second}, "must be positive"},
		{"ttl not whole seconds", SignerConfig{TTL: 90*time.Second + 500*time.Millisecond}, "must be whole seconds"},
		{"rotation not whole seconds", SignerConfig{Rotation: time.Hour + 500*time.Millisecond}, "must be whole seconds"},
		{"reserved header", SignerConfig{Header: "Cookie"}, "identity_jwt header Cookie: Cookie is reserved"},
		{"bad header", SignerConfig{Header: "X Identity"}, "is not a header name"},
		// The aud claim as written: a placeholder is never resolved.
		{"audience placeholder", SignerConfig{Audience: "{env.JWT_AUDIENCE}"}, `identity_jwt audience "{env.JWT_AUDIENCE}": values are literal`},
		{"audience", SignerConfig{Audience: "https://app.example.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
