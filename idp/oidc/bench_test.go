package oidc

import (
	"context"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// BenchmarkVerifyIDToken compares the ID token verification Callback runs
// (signature, every claim check, claims flattened for the Assertion) with
// go-oidc's IDTokenVerifier.Verify, which checks less, on the same token
// with warm key caches (docs/architecture.md, "Performance budgets": at most 25% more).
func BenchmarkVerifyIDToken(b *testing.B) {
	srv, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.AddUser("alice", "pw", map[string]any{
		"given_name": "Alice", "family_name": "Liddell", "email": "alice@example.com",
		"email_verified": true, "groups": []string{"a", "b", "c"},
	})
	srv.AddClient("app", "secret", "http://127.0.0.1/cb")
	raw, err := srv.SignIDToken("app", "alice", "nonce-1")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	p, err := New(Config{Name: "bench", Issuer: srv.Issuer, ClientID: "app", ClientSecret: "secret"})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Discover(ctx); err != nil {
		b.Fatal(err)
	}
	if _, _, err := p.verifyIDToken(ctx, raw, "nonce-1", "", ""); err != nil {
		b.Fatal(err)
	}
	b.Run("caddy-sso", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			claims, _, err := p.verifyIDToken(ctx, raw, "nonce-1", "", "")
			if err != nil {
				b.Fatal(err)
			}
			_ = flatten(claims)
		}
	})

	v := gooidc.NewVerifier(srv.Issuer, gooidc.NewRemoteKeySet(ctx, srv.Issuer+oidctest.PathJWKS),
		&gooidc.Config{ClientID: "app", SupportedSigningAlgs: defaultAlgorithms})
	if _, err := v.Verify(ctx, raw); err != nil {
		b.Fatal(err)
	}
	b.Run("go-oidc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
