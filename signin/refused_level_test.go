package signin_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/signin"
)

// TestRefusalLogLevel: a refusal that says the IdP cannot be reached or
// contradicts the configuration is logged at ERROR, as the same code is
// when a sign-in cannot start, so an alert on ERROR lines sees a JWKS
// outage as it sees a discovery outage; a person's bad, expired or forged
// callback stays at WARN. Either way the repeats of a minute go to DEBUG.
func TestRefusalLogLevel(t *testing.T) {
	for _, tt := range []struct {
		code string
		want zapcore.Level
	}{
		{oidc.CodeIdPUnavailable, zap.ErrorLevel},      // JWKS, token or userinfo endpoint away
		{saml.CodeMetadataUnavailable, zap.ErrorLevel}, // no IdP metadata could be loaded
		{idp.CodeMisconfigured, zap.ErrorLevel},        // the IdP's settings contradict the configuration
		{oidc.CodeFlowMissing, zap.WarnLevel},          // the back button, another browser
		{oidc.CodeIDTokenExpired, zap.WarnLevel},
		{saml.CodeSignature, zap.WarnLevel}, // a forged response
		{"login_failed", zap.WarnLevel},     // an error that is no LoginError
	} {
		t.Run(tt.code, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			now := time.Now()
			r := &signin.Refusals{Store: newEnv(t).db, Logger: zap.New(core), Now: func() time.Time { return now }}
			for range 2 {
				r.Record(context.Background(), "okta", &idp.LoginError{Code: tt.code, Bound: true}, "192.0.2.1", "")
			}
			got := logs.FilterMessage("sign-in refused").All()
			if len(got) != 2 {
				t.Fatalf("%d sign-in refused lines, want 2", len(got))
			}
			if got[0].Level != tt.want || got[1].Level != zap.DebugLevel {
				t.Errorf("logged at %v then %v, want %v then debug (within the minute's budget)", got[0].Level, got[1].Level, tt.want)
			}
		})
	}
}
