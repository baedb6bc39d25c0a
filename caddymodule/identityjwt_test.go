package caddymodule_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

type identityClaims struct {
	Email     string   `json:"email"`
	GivenName string   `json:"given_name"`
	Family    string   `json:"family_name"`
	Groups    []string `json:"groups"`
	IdP       string   `json:"idp"`
}

// verifyWithJWKS is what an upstream does: fetch the gateway's JWKS, and
// verify the token's signature, issuer, audience and expiry against it.
func verifyWithJWKS(t *testing.T, jwksURL, token, iss, aud string) (jwt.Claims, identityClaims, error) {
	t.Helper()
	resp, err := http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return jwt.Claims{}, identityClaims{}, err
	}
	var reg jwt.Claims
	var id identityClaims
	if err := tok.Claims(&set, &reg, &id); err != nil {
		return reg, id, err
	}
	return reg, id, reg.ValidateWithLeeway(jwt.Expected{Issuer: iss, AnyAudience: jwt.Audience{aud}, Time: time.Now()}, 0)
}

// TestIdentityJWT: the upstream gets a signed identity it can verify with
// only the JWKS endpoint; a forged inbound one is replaced; an expired one
// and one for another audience are rejected.
func TestIdentityJWT(t *testing.T) {
	w := newOIDCWorld(t, "\t\t\tjit\n")
	w.sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tidentity_jwt ttl 2s\n\t}\n\treverse_proxy %s\n}\n", w.gw.base, w.upstream.hostPort())
	w.start()
	const header = "X-Forwarded-Identity-Jwt"
	jwks := w.gw.base + "/.sso/jwks.json"

	b := newBrowser(t)
	signInStart := time.Now() // the token is signed after this
	first := upstreamSaw(t, b.signIn(w.gw.base+"/app", "ada", "ada-pw")).header(header)
	if first == "" {
		t.Fatal("the upstream got no identity token")
	}
	reg, id, err := verifyWithJWKS(t, jwks, first, w.gw.base, w.gw.base)
	if err != nil {
		t.Fatalf("verifying with the JWKS: %v", err)
	}
	if reg.Subject == "" || id.Email != "ada@example.com" || id.GivenName != "Ada" || id.Family != "Lovelace" ||
		id.IdP != "test" || len(id.Groups) != 2 || reg.Expiry.Time().Sub(reg.IssuedAt.Time()) != 2*time.Second+upstreamjwt.ClockAllowance {
		t.Fatalf("claims: %+v %+v", reg, id)
	}
	secondAt := time.Since(signInStart)
	e := upstreamSaw(t, b.get(w.gw.base+"/app"))
	if e.header("X-Forwarded-User") != reg.Subject {
		t.Fatalf("sub %q, X-Forwarded-User %q", reg.Subject, e.header("X-Forwarded-User"))
	}
	// Within the first half-life (1 s) the cached token is sent; a
	// machine that stalled the test past it rightly gets a new one.
	if e.header(header) != first && secondAt < time.Second {
		t.Fatalf("the token was signed again %v after the sign-in began, within its first half-life: not cached", secondAt)
	}
	// A forged inbound token never reaches the upstream.
	if got := upstreamSaw(t, b.get(w.gw.base+"/app", "X-Forwarded-Identity-Jwt", "forged", "x_forwarded_identity_jwt", "forged")).Headers; len(got[header]) != 1 || got[header][0] == "forged" {
		t.Fatalf("forged token: %v", got[header])
	}
	// Another audience is refused.
	if _, _, err := verifyWithJWKS(t, jwks, first, w.gw.base, "https://other.example.com"); !errors.Is(err, jwt.ErrInvalidAudience) {
		t.Fatalf("foreign audience: %v", err)
	}
	// Expired: refused; the gateway has signed a fresh one by then.
	time.Sleep(2100 * time.Millisecond)
	if _, _, err := verifyWithJWKS(t, jwks, first, w.gw.base, w.gw.base); !errors.Is(err, jwt.ErrExpired) {
		t.Fatalf("expired token: %v", err)
	}
	fresh := upstreamSaw(t, b.get(w.gw.base+"/app")).header(header)
	if fresh == first {
		t.Fatal("no fresh token after expiry")
	}
	if _, _, err := verifyWithJWKS(t, jwks, fresh, w.gw.base, w.gw.base); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
}

// TestIdentityJWTOfAStricterSSOVerifies: README's stricter sso inside a
// protected site (`@admin path /admin /admin/*`, `handle @admin { sso {
// allow … } }`) has the outer sso serve the endpoints, jwks.json included.
// With identity_jwt on the stricter one only, or with a key_rotation of
// its own, the admin app's token verifies against /.sso/jwks.json all the
// same (every route of the config publishes every route's keys), as does
// the outer's, and the set may be cached only as long as the shortest
// key_rotation allows (6m: three minutes).
func TestIdentityJWTOfAStricterSSOVerifies(t *testing.T) {
	for _, tc := range []struct{ name, outer, inner, maxAge string }{
		{"outer without identity_jwt", "", "", "public, max-age=300"},
		{"outer with identity_jwt, inner with its own key_rotation", "\t\tidentity_jwt\n", " key_rotation 6m", "public, max-age=180"},
		{"outer with identity_jwt, the same key_rotation", "\t\tidentity_jwt\n", "", "public, max-age=300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOIDCWorld(t, "\t\t\tjit\n")
			base := w.gw.base
			w.sites = fmt.Sprintf(`%[1]s {
	sso test {
%[3]s	}
	@admin path /admin /admin/*
	handle @admin {
		sso test {
			allow group admins
			identity_jwt audience admin-app%[4]s
		}
		reverse_proxy %[2]s
	}
	handle {
		reverse_proxy %[2]s
	}
}
`, base, w.upstream.hostPort(), tc.outer, tc.inner)
			w.start()
			b := newBrowser(t)
			// The outer's token, if any, is signed first: its keyring is
			// read before the stricter one's keys exist.
			outerTok := upstreamSaw(t, b.signIn(base+"/", "ada", "ada-pw")).header("X-Forwarded-Identity-Jwt")
			tok := upstreamSaw(t, b.get(base+"/admin/x")).header("X-Forwarded-Identity-Jwt")
			if tok == "" || (tc.outer != "") != (outerTok != "") {
				t.Fatalf("identity tokens: admin %q, outer %q", tok, outerTok)
			}
			resp, err := http.Get(base + "/.sso/jwks.json")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /.sso/jwks.json: %s", resp.Status)
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.maxAge {
				t.Errorf("GET /.sso/jwks.json: Cache-Control %q, want %q (the shortest key_rotation's)", got, tc.maxAge)
			}
			if _, _, err := verifyWithJWKS(t, base+"/.sso/jwks.json", tok, base, "admin-app"); err != nil {
				t.Errorf("the admin app's token does not verify against /.sso/jwks.json: %v", err)
			}
			if outerTok != "" {
				if _, _, err := verifyWithJWKS(t, base+"/.sso/jwks.json", outerTok, base, base); err != nil {
					t.Errorf("the outer route's token does not verify against /.sso/jwks.json: %v", err)
				}
			}
		})
	}
}
