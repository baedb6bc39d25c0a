package idpcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
)

// TestLogProblemsEscapesIdPText: an IdP whose discovery document holds an
// OSC title sequence, a screen erase and a newline in a value a finding
// quotes (code_challenge_methods_supported) cannot write them raw to a
// console log at start: they show escaped, and the finding's wording stays.
func TestLogProblemsEscapesIdPText(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "authorization_endpoint": srv.URL + "/auth", "token_endpoint": srv.URL + "/token",
			"jwks_uri": srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"},
			"code_challenge_methods_supported": []string{"plain\x1b]0;owned\x07\x1b[2J\nFAKE line: all good"},
		})
	}))
	defer srv.Close()
	fs := OIDC(context.Background(), srv.Client(), oidc.Config{Issuer: srv.URL})
	var buf bytes.Buffer
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	LogProblems(zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel)), "okta", fs)
	out := buf.String()
	if strings.Contains(out, "\x1b") || strings.Contains(out, "\x07") || strings.Contains(out, "\nFAKE") {
		t.Errorf("the IdP's control characters reach the console log raw: %q", out)
	}
	if !strings.Contains(out, `PKCE S256 not supported (the IdP offers plain\x1b]0;owned\x07\x1b[2J\nFAKE`) {
		t.Errorf("the finding is not logged, escaped: %q", out)
	}
}
