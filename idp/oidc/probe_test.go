package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestProbeAgainstTheTestIdP: a real OpenID provider passes every rule.
func TestProbeAgainstTheTestIdP(t *testing.T) {
	op, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	r, err := oidc.Probe(context.Background(), http.DefaultClient, op.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if r.IssuerErr != nil || r.EndpointsErr != nil || r.PKCEErr != nil || r.JWKSErr != nil || r.SigningKeys != 1 ||
		r.AlgorithmsErr(nil) != nil || r.EndSessionEndpoint == "" || r.DiscoveryURL != op.Issuer+"/.well-known/openid-configuration" {
		t.Errorf("probe = %+v", r)
	}
}

// TestProbeJudgesAsSignInDoes: each rule sign-in applies to a discovery
// document shows up as its own finding.
func TestProbeJudgesAsSignInDoes(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := jose.JSONWebKey{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}
	hmacKey := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h", Algorithm: "HS256"}
	var (
		doc  map[string]any
		keys []jose.JSONWebKey
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(doc)
		case "/jwks":
			b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	good := map[string]any{
		"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
		"jwks_uri": srv.URL + "/jwks", "code_challenge_methods_supported": []string{"S256"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	}
	with := func(k string, v any) map[string]any {
		d := maps.Clone(good)
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
		return d
	}
	for _, c := range []struct {
		name string
		doc  map[string]any
		keys []jose.JSONWebKey
		want string // which finding fails, "" for none
	}{
		{"good", good, []jose.JSONWebKey{rsaKey}, ""},
		{"issuer mismatch", with("issuer", "https://elsewhere.example"), []jose.JSONWebKey{rsaKey}, "issuer"},
		{"no token endpoint", with("token_endpoint", nil), []jose.JSONWebKey{rsaKey}, "endpoints"},
		{"plain-http endpoint", with("authorization_endpoint", "http://idp.example/authorize"), []jose.JSONWebKey{rsaKey}, "endpoints"},
		{"PKCE without S256", with("code_challenge_methods_supported", []string{"plain"}), []jose.JSONWebKey{rsaKey}, "pkce"},
		{"no jwks_uri", with("jwks_uri", nil), nil, "endpoints"},
		{"only a symmetric key", good, []jose.JSONWebKey{hmacKey}, "jwks"},
		{"no algorithm in common", with("id_token_signing_alg_values_supported", []string{"ES512"}), []jose.JSONWebKey{rsaKey}, "algorithms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc, keys = c.doc, c.keys
			r, err := oidc.Probe(context.Background(), &http.Client{Timeout: 5 * time.Second}, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]error{"issuer": r.IssuerErr, "endpoints": r.EndpointsErr, "pkce": r.PKCEErr, "jwks": r.JWKSErr,
				"algorithms": r.AlgorithmsErr(nil)}
			for name, err := range got {
				if (err != nil) != (name == c.want) {
					t.Errorf("%s: %v", name, err)
				}
			}
			if c.want == "" && r.SigningKeys != 1 {
				t.Errorf("%d signing keys", r.SigningKeys)
			}
		})
	}
	// The allow-list decides: an IdP signing only with ES512 passes when
	// ES512 is allowed.
	doc, keys = with("id_token_signing_alg_values_supported", []string{"ES512"}), []jose.JSONWebKey{rsaKey}
	if r, err := oidc.Probe(context.Background(), http.DefaultClient, srv.URL); err != nil || r.AlgorithmsErr([]string{"ES512"}) != nil {
		t.Errorf("ES512 allowed: %v", err)
	}
	if _, err := oidc.Probe(context.Background(), http.DefaultClient, "http://idp.example"); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Errorf("a plain-http issuer off loopback: %v", err)
	}
}
