package oidc_test

// Checks the peers make (oauth2-proxy, mod_auth_openidc) with real signed
// tokens from oidctest: email_verified false, the age of iat, c_hash, and
// require_acr.

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// TestUnverifiedEmail: an ID token (or userinfo) that says email_verified
// false is refused with email_unverified, unless AllowUnverifiedEmail,
// when it signs in with an unverified email; absent or true signs in.
func TestUnverifiedEmail(t *testing.T) {
	allow := func(c *oidc.Config) { c.AllowUnverifiedEmail = true }
	verified := func(v any) func(*oidctest.Token) {
		return func(tok *oidctest.Token) {
			tok.Claims["email"] = "mallory@corp.example"
			if v == nil {
				delete(tok.Claims, "email_verified")
			} else {
				tok.Claims["email_verified"] = v
			}
		}
	}
	for _, tc := range []struct {
		name         string
		cfg          func(*oidc.Config)
		hook         func(*oidctest.Token)
		userinfo     func(map[string]any)
		want         string
		wantVerified bool
	}{
		{"false", nil, verified(false), nil, oidc.CodeEmailUnverified, false},
		{"the string false", nil, verified("FALSE"), nil, oidc.CodeEmailUnverified, false},
		{"false in userinfo, none in the ID token", nil, func(tok *oidctest.Token) {
			delete(tok.Claims, "email")
			delete(tok.Claims, "email_verified")
		}, func(c map[string]any) { c["email_verified"] = false }, oidc.CodeEmailUnverified, false},
		{"false, allowed", allow, verified(false), nil, "", false},
		{"absent (Entra)", nil, verified(nil), nil, "", false},
		{"true", nil, verified(true), nil, "", true},
		{"the string true", nil, verified("true"), nil, "", true},
		// Read without regard to case, as "FALSE" is above.
		{"the string True", nil, verified("True"), nil, "", true},
		{"true in the ID token, false in userinfo", nil, func(tok *oidctest.Token) {
			delete(tok.Claims, "given_name") // userinfo is fetched, but does not override
			tok.Claims["email_verified"] = true
		}, func(c map[string]any) { c["email_verified"] = false }, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*oidc.Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			e := newEnv(t, opts...)
			e.idp.SetHooks(oidctest.Hooks{IDToken: tc.hook, Userinfo: tc.userinfo})
			res := e.login(newBrowser())
			wantCode(t, res, tc.want)
			if tc.want != "" {
				if !strings.Contains(res.Err, "email_verified false") {
					t.Errorf("the error does not say why: %s", res.Err)
				}
				return
			}
			if res.Assertion.EmailVerified != tc.wantVerified {
				t.Errorf("EmailVerified = %v, want %v", res.Assertion.EmailVerified, tc.wantVerified)
			}
		})
	}
}

// TestIDTokenIatAge: at sign-in an ID token issued more than 10 minutes
// plus the clock skew ago is refused (id_token_iat); within it, accepted.
func TestIDTokenIatAge(t *testing.T) {
	for _, tc := range []struct {
		name string
		age  time.Duration
		skew time.Duration
		want string
	}{
		{"48 hours old", 48 * time.Hour, 0, oidc.CodeIDTokenIssuedAt},
		{"12 minutes old", 12 * time.Minute, 0, oidc.CodeIDTokenIssuedAt},
		{"10.5 minutes old, within the default skew", 10*time.Minute + 30*time.Second, 0, ""},
		{"14 minutes old, within a 5m skew", 14 * time.Minute, 5 * time.Minute, ""},
		{"16 minutes old, beyond a 5m skew", 16 * time.Minute, 5 * time.Minute, oidc.CodeIDTokenIssuedAt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *oidc.Config) { c.ClockSkew = tc.skew })
			old := time.Now().Add(-tc.age).Unix()
			e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
				tok.Claims["iat"] = old
				tok.Claims["auth_time"] = old
			}})
			res := e.login(newBrowser())
			wantCode(t, res, tc.want)
			if tc.want != "" && !strings.Contains(res.Err, "before now") {
				t.Errorf("the error does not say why: %s", res.Err)
			}
		})
	}
}

// TestRefreshedIDTokenIatAge: a refreshed ID token is not held to the age
// bound (nor to email_verified): it changes neither who the session is
// nor its email.
func TestRefreshedIDTokenIatAge(t *testing.T) {
	e, tok := refreshEnv(t)
	old := time.Now().Add(-time.Hour).Unix()
	e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
		tok.Claims["iat"] = old
		tok.Claims["email_verified"] = false
	}})
	got, err := e.p.Refresh(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.IDToken == tok.IDToken {
		t.Error("the refreshed ID token was not taken")
	}
}

// halfHash is the at_hash/c_hash of v under alg's hash.
func halfHash(alg, v string) string {
	var d []byte
	switch alg {
	case "RS384":
		s := sha512.Sum384([]byte(v))
		d = s[:]
	case "RS512":
		s := sha512.Sum512([]byte(v))
		d = s[:]
	default:
		s := sha256.Sum256([]byte(v))
		d = s[:]
	}
	return base64.RawURLEncoding.EncodeToString(d[:len(d)/2])
}

// TestCHash: a c_hash in the ID token must be the code's (id_token_at_hash
// otherwise); a matching one, under the token's algorithm, signs in.
func TestCHash(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alg   string
		cHash func(code string) any
		want  string
	}{
		{"of another code", "RS256", func(string) any { return "AAAAAAAAAAAAAAAAAAAAAA" }, oidc.CodeIDTokenAtHash},
		{"of the code under another hash", "RS384", func(code string) any { return halfHash("RS256", code) }, oidc.CodeIDTokenAtHash},
		{"not a string", "RS256", func(string) any { return 42 }, oidc.CodeIDTokenAtHash},
		{"empty", "RS256", func(string) any { return "" }, oidc.CodeIDTokenAtHash},
		{"of the code", "RS256", func(code string) any { return halfHash("RS256", code) }, ""},
		{"of the code, RS384", "RS384", func(code string) any { return halfHash("RS384", code) }, ""},
		{"of the code, RS512", "RS512", func(code string) any { return halfHash("RS512", code) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *oidc.Config) { c.Algorithms = []string{tc.alg} })
			b := newBrowser()
			cb := e.authorize(b, e.begin(b, "/"), "alice")
			u, err := url.Parse(cb)
			if err != nil {
				t.Fatal(err)
			}
			code := u.Query().Get("code")
			if code == "" {
				t.Fatalf("no code in %s", cb)
			}
			// The hook runs at the token endpoint, when the code is
			// exchanged.
			e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
				tok.Alg = tc.alg
				tok.Claims["c_hash"] = tc.cHash(code)
			}})
			res := e.mustCallback(b, cb)
			wantCode(t, res, tc.want)
			if tc.want != "" && !strings.Contains(res.Err, "c_hash does not match") {
				t.Errorf("the error does not say why: %s", res.Err)
			}
		})
	}
}

// TestRequireACR: require_acr sends acr_values and refuses an ID token
// whose acr is not one of them (acr_not_satisfied), also when the browser
// stripped acr_values from the authorization request.
func TestRequireACR(t *testing.T) {
	mfa := func(c *oidc.Config) { c.RequireACR = []string{"urn:example:mfa", "urn:example:hwk"} }
	for _, tc := range []struct {
		name  string
		acr   any // nil: no acr claim
		strip bool
		want  string
	}{
		{"password", "urn:example:password", false, oidc.CodeACRNotSatisfied},
		{"password, acr_values stripped", "urn:example:password", true, oidc.CodeACRNotSatisfied},
		{"no acr", nil, false, oidc.CodeACRNotSatisfied},
		{"acr not a string", 2, false, oidc.CodeACRNotSatisfied},
		{"mfa", "urn:example:mfa", false, ""},
		{"the second value", "urn:example:hwk", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, mfa)
			e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
				if tc.acr != nil {
					tok.Claims["acr"] = tc.acr
				}
			}})
			b := newBrowser()
			authURL := e.begin(b, "/")
			u, _ := url.Parse(authURL)
			q := u.Query()
			if got := q.Get("acr_values"); got != "urn:example:mfa urn:example:hwk" {
				t.Fatalf("acr_values = %q", got)
			}
			if tc.strip {
				q.Del("acr_values")
				u.RawQuery = q.Encode()
			}
			res := e.mustCallback(b, e.authorize(b, u.String(), "alice"))
			wantCode(t, res, tc.want)
		})
	}
	// Without require_acr, any acr (or none) signs in, and none is asked.
	e := newEnv(t)
	b := newBrowser()
	authURL := e.begin(b, "/")
	if strings.Contains(authURL, "acr_values") {
		t.Errorf("acr_values sent without require_acr: %s", authURL)
	}
	wantCode(t, e.mustCallback(b, e.authorize(b, authURL, "alice")), "")
}

// TestRequireACRCheck: no empty require_acr value (it would admit a token
// without acr), none with spaces (acr_values splits at them, so no token
// could match), and acr_values left to require_acr.
func TestRequireACRCheck(t *testing.T) {
	testCheck(t, []checkCase{
		{"empty value", func(c *oidc.Config) { c.RequireACR = []string{"a", ""} }, "must not be empty"},
		{"blank value", func(c *oidc.Config) { c.RequireACR = []string{" "} }, "must not hold spaces"},
		{"two values in one", func(c *oidc.Config) { c.RequireACR = []string{"urn:a urn:b"} }, "must not hold spaces"},
		{"trailing tab", func(c *oidc.Config) { c.RequireACR = []string{"urn:a\t"} }, "must not hold spaces"},
		{"with acr_values in AuthParams", func(c *oidc.Config) {
			c.RequireACR = []string{"a"}
			c.AuthParams = map[string]string{"acr_values": "b"}
		}, "acr_values is set by require_acr"},
		{"fine", func(c *oidc.Config) { c.RequireACR = []string{"a"} }, ""},
		// Sent and compared as written: {env.ACR} is never resolved.
		{"a placeholder", func(c *oidc.Config) { c.RequireACR = []string{"{env.ACR}"} }, `require_acr "{env.ACR}": values are literal`},
		{"a brace that is no placeholder", func(c *oidc.Config) { c.RequireACR = []string{"urn:{x}"} }, ""},
	})
}
