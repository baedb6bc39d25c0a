package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// refreshEnv is an env whose IdP issues 60-second access tokens and a
// refresh token (offline_access), on the relying party's clock, and one
// login of alice's (tenant pinned, as for Entra).
func refreshEnv(t *testing.T) (*env, *idp.Tokens) {
	t.Helper()
	e := newEnv(t, func(c *oidc.Config) { c.OfflineAccess, c.TenantID = true, aliceTenant })
	e.idp.SetClock(e.clock.Now)
	e.idp.SetAccessTokenTTL(time.Minute)
	b := newBrowser()
	authURL := e.begin(b, "/")
	if u, _ := url.Parse(authURL); !strings.Contains(u.Query().Get("scope"), "offline_access") {
		t.Fatalf("offline_access not requested: %s", authURL)
	}
	res := e.mustCallback(b, e.authorize(b, authURL, "alice"))
	wantCode(t, res, "")
	tok := &idp.Tokens{IDToken: res.Tokens.ID, AccessToken: res.Tokens.Access, RefreshToken: res.Tokens.Refresh, Expiry: res.Tokens.Expiry}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatalf("sign-in tokens: %v", tok)
	}
	if d := tok.Expiry.Sub(e.clock.Now()); d != time.Minute {
		t.Errorf("access token expires in %v, want the IdP's 60 s", d)
	}
	return e, tok
}

// userinfoAccepts reports whether the IdP takes an access token.
func userinfoAccepts(t *testing.T, e *env, accessToken string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.idp.Issuer+oidctest.PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestRefresh: after the access token expired, Refresh returns a new one
// the IdP accepts, a rotated refresh token and a new, verified ID token;
// the old refresh token is then refused for good.
func TestRefresh(t *testing.T) {
	e, tok := refreshEnv(t)
	e.clock.Add(61 * time.Second) // expired at the IdP too
	if userinfoAccepts(t, e, tok.AccessToken) {
		t.Fatal("the IdP still accepts the expired access token")
	}
	got, err := e.p.Refresh(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == tok.AccessToken || !userinfoAccepts(t, e, got.AccessToken) {
		t.Error("the refreshed access token is not a new one the IdP accepts")
	}
	if got.RefreshToken == tok.RefreshToken || got.RefreshToken == "" {
		t.Error("the rotated refresh token was not returned")
	}
	if got.IDToken == tok.IDToken || strings.Count(got.IDToken, ".") != 2 {
		t.Error("the new ID token was not returned")
	}
	if d := got.Expiry.Sub(e.clock.Now()); d != time.Minute {
		t.Errorf("new expiry in %v, want 60 s", d)
	}
	if n := e.idp.Refreshes(); n != 1 {
		t.Errorf("%d refresh grants, want 1", n)
	}
	// The rotated-out refresh token is refused for good.
	if _, err := e.p.Refresh(context.Background(), tok); !errors.Is(err, idp.ErrGrantRevoked) {
		t.Errorf("old refresh token: %v, want ErrGrantRevoked", err)
	}
	// And the new one works.
	if _, err := e.p.Refresh(context.Background(), got); err != nil {
		t.Errorf("refreshing with the rotated refresh token: %v", err)
	}
}

// TestRefreshRevokedGrant: an administrator revoked the grant at the IdP.
func TestRefreshRevokedGrant(t *testing.T) {
	e, tok := refreshEnv(t)
	if e.idp.RevokeGrants("alice") == 0 {
		t.Fatal("nothing revoked")
	}
	_, err := e.p.Refresh(context.Background(), tok)
	if !errors.Is(err, idp.ErrGrantRevoked) {
		t.Fatalf("revoked grant: %v, want ErrGrantRevoked", err)
	}
	if strings.Contains(err.Error(), tok.RefreshToken) || strings.Contains(err.Error(), tok.AccessToken) {
		t.Errorf("the error names a token: %v", err)
	}
}

// TestRefreshIdPDown: an unreachable IdP is a passing failure, not the end
// of the grant.
func TestRefreshIdPDown(t *testing.T) {
	e, tok := refreshEnv(t)
	e.idp.SetUnavailable(true)
	_, err := e.p.Refresh(context.Background(), tok)
	if err == nil || errors.Is(err, idp.ErrGrantRevoked) {
		t.Fatalf("IdP down: %v, want a passing error", err)
	}
	if strings.Contains(err.Error(), tok.RefreshToken) {
		t.Errorf("the error names the refresh token: %v", err)
	}
}

// TestRefreshedIDTokenChecks: each rule OpenID Connect Core 12.2 sets for
// an ID token from a refresh, broken once by the IdP. A token about
// another subject or for another client ends the grant; one that merely
// fails to verify is refused without ending it, and without losing what
// the token endpoint issued with it: the new access token and the rotated
// refresh token come back with the session's ID token, and the next
// refresh with them succeeds.
func TestRefreshedIDTokenChecks(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		hook    func(*oidctest.Token)
		revoked bool
	}{
		{"other subject", func(tok *oidctest.Token) { tok.Claims["sub"] = "mallory-sub" }, true},
		{"other issuer", func(tok *oidctest.Token) { tok.Claims["iss"] = "https://evil.example" }, true},
		{"other audience", func(tok *oidctest.Token) { tok.Claims["aud"] = "other-client" }, true},
		{"an added audience", func(tok *oidctest.Token) {
			tok.Claims["aud"] = []string{clientID, "other-client"}
			tok.Claims["azp"] = clientID
		}, true},
		{"an azp the original lacked", func(tok *oidctest.Token) { tok.Claims["azp"] = clientID }, true},
		{"an added audience without azp", func(tok *oidctest.Token) { tok.Claims["aud"] = []string{clientID, "other-client"} }, true},
		{"other auth_time", func(tok *oidctest.Token) { tok.Claims["auth_time"] = 12345 }, true},
		{"other nonce", func(tok *oidctest.Token) { tok.Claims["nonce"] = "another-login" }, true},
		{"other tenant", func(tok *oidctest.Token) { tok.Claims["tid"] = tenantB }, true},
		{"other subject, and expired", func(tok *oidctest.Token) {
			tok.Claims["sub"] = "mallory-sub"
			tok.Claims["exp"] = time.Now().Add(-time.Hour).Unix()
		}, true},
		{"other subject, and at_hash of another access token", func(tok *oidctest.Token) {
			tok.Claims["sub"] = "mallory-sub"
			tok.Claims["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"
		}, true},
		{"expired", func(tok *oidctest.Token) { tok.Claims["exp"] = time.Now().Add(-time.Hour).Unix() }, false},
		{"issued in the future", func(tok *oidctest.Token) { tok.Claims["iat"] = time.Now().Add(time.Hour).Unix() }, false},
		{"no exp", func(tok *oidctest.Token) { delete(tok.Claims, "exp") }, false},
		{"no iat", func(tok *oidctest.Token) { delete(tok.Claims, "iat") }, false},
		{"unsigned", func(tok *oidctest.Token) { tok.Alg = "none" }, false},
		// Unverifiable, a token about someone else still ends the grant.
		{"unsigned, other subject", func(tok *oidctest.Token) { tok.Alg = "none"; tok.Claims["sub"] = "mallory-sub" }, true},
		{"signed by an unknown key, other audience", func(tok *oidctest.Token) { tok.Key = otherKey; tok.Claims["aud"] = "other-client" }, true},
		{"signed by an unknown key", func(tok *oidctest.Token) { tok.Key = otherKey }, false},
		{"at_hash of another access token", func(tok *oidctest.Token) { tok.Claims["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tok := refreshEnv(t)
			e.idp.SetHooks(oidctest.Hooks{IDToken: tc.hook})
			got, err := e.p.Refresh(context.Background(), tok)
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, idp.ErrGrantRevoked) != tc.revoked {
				t.Errorf("ends the grant = %v, want %v (%v)", !tc.revoked, tc.revoked, err)
			}
			if tc.revoked {
				if got != nil {
					t.Errorf("a refresh that ends the grant returned tokens: %v", got)
				}
				return
			}
			checkKeptAfterRefusedIDToken(t, e, tok, got)
		})
	}
	// And the same IdP without a hook is accepted (the checks are not
	// refusing everything).
	e, tok := refreshEnv(t)
	if _, err := e.p.Refresh(context.Background(), tok); err != nil {
		t.Errorf("a correct refreshed ID token was refused: %v", err)
	}
}

// TestRefreshedIDTokenTimesWithinSkew: a refreshed ID token is held to
// exp and iat with the clock skew, as a sign-in's is: one that expired
// less than ClockSkew ago, or was issued less than ClockSkew ahead of this
// clock, is accepted and replaces the session's ID token.
func TestRefreshedIDTokenTimesWithinSkew(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(tok *oidctest.Token, now time.Time)
	}{
		{"expired within the clock skew", func(tok *oidctest.Token, now time.Time) { tok.Claims["exp"] = now.Add(-30 * time.Second).Unix() }},
		{"issued within the clock skew ahead", func(tok *oidctest.Token, now time.Time) { tok.Claims["iat"] = now.Add(30 * time.Second).Unix() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tok := refreshEnv(t)
			e.idp.SetHooks(oidctest.Hooks{IDToken: func(t *oidctest.Token) { tc.edit(t, e.clock.Now()) }})
			got, err := e.p.Refresh(context.Background(), tok)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got.IDToken == tok.IDToken {
				t.Error("the new ID token did not replace the session's")
			}
		})
	}
}

// checkKeptAfterRefusedIDToken: got, what Refresh returned from tok with
// a refused ID token, holds the IdP's new access token and rotated refresh
// token and tok's ID token; the IdP now refuses tok's refresh token and
// takes got's.
func checkKeptAfterRefusedIDToken(t *testing.T, e *env, tok, got *idp.Tokens) {
	t.Helper()
	if got == nil {
		t.Fatal("the tokens the IdP issued were dropped with the refused ID token")
	}
	if got.IDToken != tok.IDToken {
		t.Error("the refused ID token replaced the session's")
	}
	if got.RefreshToken == "" || got.RefreshToken == tok.RefreshToken {
		t.Error("the rotated refresh token was not returned")
	}
	if got.AccessToken == tok.AccessToken || !userinfoAccepts(t, e, got.AccessToken) {
		t.Error("the new access token was not returned")
	}
	if d := got.Expiry.Sub(e.clock.Now()); d != time.Minute {
		t.Errorf("new expiry in %v, want 60 s", d)
	}
	e.idp.SetHooks(oidctest.Hooks{})
	if _, err := e.p.Refresh(context.Background(), tok); !errors.Is(err, idp.ErrGrantRevoked) {
		t.Fatalf("the IdP did not rotate the refresh token out: %v", err)
	}
	again, err := e.p.Refresh(context.Background(), got)
	if err != nil {
		t.Fatalf("the next refresh, with the tokens kept: %v", err)
	}
	if again.IDToken == tok.IDToken || again.RefreshToken == got.RefreshToken {
		t.Error("the next refresh did not bring a new ID token and refresh token")
	}
}

// TestRefreshKeepsRotatedTokensWhenIDTokenRefused: an IdP that rotates
// refresh tokens (Okta, Auth0, PingOne) answers a refresh with new tokens
// and an ID token whose at_hash does not match the access token. The
// refresh is reported (a passing error), but the rotated refresh token
// and the new access token are returned with the session's ID token, so
// that the next refresh uses the refresh token the IdP now accepts.
func TestRefreshKeepsRotatedTokensWhenIDTokenRefused(t *testing.T) {
	e, tok := refreshEnv(t)
	e.clock.Add(61 * time.Second)
	e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Claims["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" }})
	got, err := e.p.Refresh(context.Background(), tok)
	if err == nil || errors.Is(err, idp.ErrGrantRevoked) {
		t.Fatalf("refused ID token: %v, want a passing error", err)
	}
	if got != nil && (strings.Contains(err.Error(), got.RefreshToken) || strings.Contains(err.Error(), got.AccessToken)) {
		t.Errorf("the error names a token: %v", err)
	}
	checkKeptAfterRefusedIDToken(t, e, tok, got)
}
