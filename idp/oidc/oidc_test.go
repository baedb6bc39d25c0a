package oidc_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

func TestLoginHappyPath(t *testing.T) {
	e := newEnv(t)
	b := newBrowser()
	authURL := e.begin(b, "/app?x=1")

	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, e.idp.Issuer+oidctest.PathAuthorize) {
		t.Fatalf("redirected to %q", authURL)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": clientID, "redirect_uri": e.rp.URL + "/callback",
		"scope": "openid profile email", "code_challenge_method": "S256",
	} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 26 || len(q.Get("nonce")) < 26 {
		t.Errorf("weak or missing PKCE/state/nonce: %v", q)
	}
	if len(flowCookies(b.cookies(e.rp.URL))) != 1 {
		t.Fatal("Begin did not set a flow cookie")
	}

	res := e.mustCallback(b, e.authorize(b, authURL, "alice"))
	wantCode(t, res, "")
	a := res.Assertion
	if res.ReturnTo != "/app?x=1" || a.IdP != "test" || a.Protocol != idp.ProtocolOIDC || a.Subject != "alice-sub" || !a.EmailVerified {
		t.Errorf("assertion = %+v, returnTo %q", a, res.ReturnTo)
	}
	if strings.Count(res.Tokens.ID, ".") != 2 || res.Tokens.Access == "" || res.Tokens.Refresh != "" {
		t.Errorf("tokens = %+v, want an ID token and an access token (no refresh token without offline_access)", res.Tokens)
	}
	if d := time.Until(res.Tokens.Expiry); d < 59*time.Minute || d > time.Hour {
		t.Errorf("access token expiry %v from now, want the IdP's expires_in (1h)", d)
	}
	for name, want := range map[string][]string{
		"sub":             {"alice-sub"},
		"given_name":      {"Alice"},
		"family_name":     {"Liddell"},
		"email":           {"alice@example.com"},
		"email_verified":  {"true"},
		"groups":          {"admins", "staff"},
		"employee_number": {"12345678901234567"}, // every digit kept
		"address":         {`{"country":"NL"}`},
		"oid":             {"00000000-0000-0000-0000-0000000000a1"},
		"iss":             {e.idp.Issuer},
		"aud":             {clientID},
	} {
		if got := a.Attributes[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("attribute %s = %q, want %q", name, got, want)
		}
	}
	if n := e.idp.Requests(oidctest.PathUserinfo); n != 0 {
		t.Errorf("userinfo fetched %d times although the ID token had the profile", n)
	}
	if fc := flowCookies(b.cookies(e.rp.URL)); len(fc) != 0 {
		t.Errorf("flow cookie not cleared: %v", fc)
	}
}

// TestBeginFlowCookieSameSiteLax: the flow cookie Begin sets is
// SameSite=Lax, HttpOnly, and the redirect is not cached. The callback is
// a top-level navigation from the IdP's site: a browser sends a Lax cookie
// with it and a Strict one not, which would fail every sign-in with
// flow_missing (the cookie jar of these tests ignores SameSite, so only
// the header tells).
func TestBeginFlowCookieSameSiteLax(t *testing.T) {
	e := newEnv(t)
	resp, err := e.startLogin(newBrowser(), "/")
	if err != nil {
		t.Fatal(err)
	}
	fc := flowCookies(resp.Cookies())
	if len(fc) != 1 {
		t.Fatalf("Begin set %d flow cookies, want 1", len(fc))
	}
	if c := fc[0]; c.SameSite != http.SameSiteLaxMode || !c.HttpOnly {
		t.Errorf("flow cookie SameSite %v, HttpOnly %v; want Lax (%v) and HttpOnly", c.SameSite, c.HttpOnly, http.SameSiteLaxMode)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}

func TestPublicClient(t *testing.T) {
	e := newEnv(t, func(c *oidc.Config) { c.ClientSecret = "" })
	e.idp.AddClient(clientID, "", e.rp.URL+"/callback")
	wantCode(t, e.login(newBrowser()), "")
}

func TestUserinfo(t *testing.T) {
	stripProfile := func(tok *oidctest.Token) {
		for _, c := range []string{"given_name", "family_name", "email", "email_verified"} {
			delete(tok.Claims, c)
		}
	}
	tests := []struct {
		name  string
		hooks oidctest.Hooks
		want  string
	}{
		{"merged when the ID token lacks the profile", oidctest.Hooks{IDToken: stripProfile}, ""},
		{"subject must match", oidctest.Hooks{IDToken: stripProfile, Userinfo: func(c map[string]any) { c["sub"] = "mallory" }}, oidc.CodeUserinfoSubject},
		{"never overrides the ID token", oidctest.Hooks{
			IDToken:  func(tok *oidctest.Token) { delete(tok.Claims, "email") },
			Userinfo: func(c map[string]any) { c["tid"] = "other-tenant"; c["given_name"] = "Eve" },
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.SetHooks(tc.hooks)
			res := e.login(newBrowser())
			wantCode(t, res, tc.want)
			if e.idp.Requests(oidctest.PathUserinfo) != 1 {
				t.Errorf("userinfo requests = %d, want 1", e.idp.Requests(oidctest.PathUserinfo))
			}
			if tc.want != "" {
				return
			}
			a := res.Assertion
			if a.First("email") != "alice@example.com" || a.First("family_name") != "Liddell" || a.First("given_name") != "Alice" ||
				a.First("tid") != aliceTenant || a.First("sub") != "alice-sub" || !a.EmailVerified {
				t.Errorf("merged attributes = %v", a.Attributes)
			}
		})
	}
}

func TestSeveralTabs(t *testing.T) {
	e := newEnv(t)
	b := newBrowser()
	authA := e.begin(b, "/a")
	authB := e.begin(b, "/b")
	if len(flowCookies(b.cookies(e.rp.URL))) != 2 {
		t.Fatal("two logins must keep two flow cookies")
	}
	cbA := e.authorize(b, authA, "alice")
	cbB := e.authorize(b, authB, "alice") // IdP session: no second form
	for _, step := range []struct{ url, returnTo string }{{cbB, "/b"}, {cbA, "/a"}} {
		res := e.mustCallback(b, step.url)
		wantCode(t, res, "")
		if res.ReturnTo != step.returnTo {
			t.Errorf("returnTo = %q, want %q", res.ReturnTo, step.returnTo)
		}
	}
}

func TestReplayedCallback(t *testing.T) {
	e := newEnv(t)
	b := newBrowser()
	auth := e.begin(b, "/")
	cb := e.authorize(b, auth, "alice")
	copied := flowCookies(b.cookies(e.rp.URL))
	wantCode(t, e.mustCallback(b, cb), "")

	// The same browser: its cookie is gone.
	wantCode(t, e.mustCallback(b, cb), oidc.CodeFlowMissing)
	// An attacker with a copy of the cookie, replaying the same callback:
	// the IdP refuses the used code.
	thief := newBrowser()
	u, _ := url.Parse(e.rp.URL)
	thief.Jar.SetCookies(u, copied)
	wantCode(t, e.mustCallback(thief, cb), oidc.CodeTokenExchange)
	// ... and with a fresh code for the same authorization request (the
	// same state, nonce and PKCE challenge, which the copied cookie
	// matches): everything verifies, and the state, consumed with the
	// first sign-in, is what refuses it.
	thief.Jar.SetCookies(u, copied)
	wantCode(t, e.mustCallback(thief, e.authorize(b, auth, "alice")), oidc.CodeStateReplayed)
}

func TestFlowCookieBinding(t *testing.T) {
	tests := []struct {
		name string
		// tamper gets the browser that began the login and its callback
		// URL, and returns the browser and URL to deliver.
		tamper func(e *env, b *browser, cb string) (*browser, string)
		header []string
		want   string
	}{
		{"other browser", func(e *env, b *browser, cb string) (*browser, string) { return newBrowser(), cb }, nil, oidc.CodeFlowMissing},
		{"tampered cookie", func(e *env, b *browser, cb string) (*browser, string) {
			c := flowCookies(b.cookies(e.rp.URL))[0]
			c.Value = strings.Repeat("A", len(c.Value))
			u, _ := url.Parse(e.rp.URL)
			b.Jar.SetCookies(u, []*http.Cookie{c})
			return b, cb
		}, nil, oidc.CodeFlowInvalid},
		{"cookie of another login", func(e *env, b *browser, cb string) (*browser, string) {
			own := flowCookies(b.cookies(e.rp.URL))[0]
			other := newBrowser()
			e.begin(other, "/other")
			c := flowCookies(other.cookies(e.rp.URL))[0]
			c.Name = own.Name
			thief := newBrowser()
			u, _ := url.Parse(e.rp.URL)
			thief.Jar.SetCookies(u, []*http.Cookie{c})
			return thief, cb
		}, nil, oidc.CodeFlowInvalid},
		{"expired", func(e *env, b *browser, cb string) (*browser, string) {
			e.clock.Add(10*time.Minute + time.Second)
			return b, cb
		}, nil, oidc.CodeFlowExpired},
		{"no state", func(e *env, b *browser, cb string) (*browser, string) {
			return b, strings.Replace(cb, "state=", "xstate=", 1)
		}, nil, oidc.CodeStateMissing},
		{"other redirect URL", func(e *env, b *browser, cb string) (*browser, string) { return b, cb },
			[]string{"X-Test-Redirect", "https://other.example/callback"}, oidc.CodeRedirectMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := newBrowser()
			cb := e.authorize(b, e.begin(b, "/"), "alice")
			b2, cb2 := tc.tamper(e, b, cb)
			wantCode(t, e.mustCallback(b2, cb2, tc.header...), tc.want)
		})
	}
}

func TestAuthorizationResponse(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*oidctest.Server)
		want  string
	}{
		{"iss sent and correct", func(s *oidctest.Server) {}, ""},
		{"iss mismatch", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{AuthResponse: func(q url.Values) { q.Set("iss", "https://evil.example") }})
		}, oidc.CodeIssuerMismatch},
		// RFC 9207 2.4: one iss, the issuer; a second value after the
		// right one is not a response to trust either.
		{"iss twice, the issuer first", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{AuthResponse: func(q url.Values) { q.Add("iss", "https://evil.example") }})
		}, oidc.CodeIssuerMismatch},
		{"iss mismatch on an error response", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{AuthResponse: func(q url.Values) {
				q.Del("code")
				q.Set("error", "access_denied")
				q.Set("iss", "https://evil.example")
			}})
		}, oidc.CodeIssuerMismatch},
		{"iss missing though advertised", func(s *oidctest.Server) { s.SetSendIss(false) }, oidc.CodeIssuerMissing},
		{"iss missing, not advertised", func(s *oidctest.Server) {
			s.SetSendIss(false)
			s.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) {
				delete(d, "authorization_response_iss_parameter_supported")
			}})
		}, ""},
		{"error from the IdP", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{AuthResponse: func(q url.Values) {
				q.Del("code")
				q.Set("error", "access_denied")
				q.Set("error_description", "user is not assigned to the application")
			}})
		}, oidc.CodeIdPError},
		{"no code", func(s *oidctest.Server) {
			s.SetHooks(oidctest.Hooks{AuthResponse: func(q url.Values) { q.Del("code") }})
		}, oidc.CodeCodeMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e.idp)
			wantCode(t, e.login(newBrowser()), tc.want)
		})
	}
}

func TestIDTokenChecks(t *testing.T) {
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	set := func(k string, v any) func(*oidctest.Token) {
		return func(tok *oidctest.Token) { tok.Claims[k] = v }
	}
	del := func(k string) func(*oidctest.Token) {
		return func(tok *oidctest.Token) { delete(tok.Claims, k) }
	}
	alg := func(a string) func(*oidctest.Token) {
		return func(tok *oidctest.Token) { tok.Alg = a }
	}
	algs := func(a ...string) func(*oidc.Config) { return func(c *oidc.Config) { c.Algorithms = a } }
	tenant := func(c *oidc.Config) { c.TenantID = strings.ToUpper(aliceTenant) } // compared case-insensitively

	tests := []struct {
		name string
		cfg  func(*oidc.Config)
		hook func(*oidctest.Token)
		want string
	}{
		{"wrong audience", nil, set("aud", "other-app"), oidc.CodeIDTokenAudience},
		{"several audiences without azp", nil, set("aud", []string{clientID, "other-app"}), oidc.CodeIDTokenAZP},
		{"azp of another client", nil, set("azp", "other-app"), oidc.CodeIDTokenAZP},
		{"several audiences with our azp", nil, func(tok *oidctest.Token) {
			tok.Claims["aud"] = []string{"other-app", clientID}
			tok.Claims["azp"] = clientID
		}, ""},
		{"expired", nil, set("exp", now.Add(-2*time.Minute).Unix()), oidc.CodeIDTokenExpired},
		{"expired within clock skew", nil, set("exp", now.Add(-30*time.Second).Unix()), ""},
		{"no exp", nil, del("exp"), oidc.CodeIDTokenExpired},
		{"iat in the future", nil, set("iat", now.Add(2*time.Minute).Unix()), oidc.CodeIDTokenIssuedAt},
		{"iat in the future within skew", nil, set("iat", now.Add(30*time.Second).Unix()), ""},
		{"no iat", nil, del("iat"), oidc.CodeIDTokenIssuedAt},
		{"nbf in the future", nil, set("nbf", now.Add(2*time.Minute).Unix()), oidc.CodeIDTokenNotBefore},
		// An nbf that is not a NumericDate is refused, not read as no bound.
		{"nbf a string", nil, set("nbf", "tomorrow"), oidc.CodeIDTokenNotBefore},
		{"nbf an object", nil, set("nbf", map[string]any{"t": 1}), oidc.CodeIDTokenNotBefore},
		{"wrong nonce", nil, set("nonce", "not-the-nonce"), oidc.CodeIDTokenNonce},
		{"no nonce", nil, del("nonce"), oidc.CodeIDTokenNonce},
		{"wrong iss", nil, set("iss", "https://evil.example"), oidc.CodeIDTokenIssuer},
		{"no sub", nil, del("sub"), oidc.CodeIDTokenSubject},
		{"at_hash of another access token", nil, set("at_hash", "AAAAAAAAAAAAAAAAAAAAAA"), oidc.CodeIDTokenAtHash},
		{"alg none", nil, alg("none"), oidc.CodeIDTokenSignature},
		{"HS256 keyed with the client secret, not listed", nil, alg("HS256"), oidc.CodeIDTokenSignature},
		{"HS256 listed", algs("RS256", "HS256"), alg("HS256"), ""},
		{"RS512 not listed", nil, alg("RS512"), oidc.CodeIDTokenSignature},
		{"RS512 listed", algs("RS512"), alg("RS512"), ""},
		{"PS256 by default", nil, alg("PS256"), ""},
		{"RS256 not listed", algs("PS256"), nil, oidc.CodeIDTokenSignature},
		{"key the JWKS does not list", nil, func(tok *oidctest.Token) { tok.Key = foreign }, oidc.CodeIDTokenSignature},
		{"foreign key claiming our kid", nil, nil, oidc.CodeIDTokenSignature}, // hook set below
		{"tid pinned", tenant, nil, ""},
		{"tid of another tenant", tenant, set("tid", tenantB), oidc.CodeTenantMismatch},
		{"tid missing", tenant, del("tid"), oidc.CodeTenantMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*oidc.Config)
			if tc.cfg != nil {
				opts = append(opts, tc.cfg)
			}
			e := newEnv(t, opts...)
			hook := tc.hook
			if tc.name == "foreign key claiming our kid" {
				kid := e.idp.SigningKeyID()
				hook = func(tok *oidctest.Token) { tok.Key = foreign; tok.Header["kid"] = kid }
			}
			e.idp.SetHooks(oidctest.Hooks{IDToken: hook})
			res := e.login(newBrowser())
			wantCode(t, res, tc.want)
			if tc.want == "" && tc.cfg != nil && res.Assertion.First("oid") == "" {
				t.Error("oid must stay in the attributes for the mapping layer")
			}
		})
	}
}

// TestIDTokenTimeBounds pins the relying party's clock to a whole second
// and puts exp, iat and nbf one second either side of their bounds: exp is
// NotOnOrAfter, so a token is expired at exactly exp plus the clock skew,
// and an iat exactly MaxIDTokenAge plus the skew old is still accepted; an
// iat or nbf up to the clock skew ahead of this clock (the IdP's clock a
// little fast) is accepted, inclusive, and a second more is refused.
func TestIDTokenTimeBounds(t *testing.T) {
	skew := idp.DefaultClockSkew
	for _, tc := range []struct {
		name string
		exp  time.Duration // exp - now; 0 keeps the IdP's
		age  time.Duration // now - iat
		nbf  time.Duration // nbf - now; 0 sends none
		want string
	}{
		{"exp exactly the skew ago", -skew, time.Minute, 0, oidc.CodeIDTokenExpired},
		{"exp a second short of the skew ago", -skew + time.Second, time.Minute, 0, ""},
		{"iat a second beyond the age bound", 0, oidc.MaxIDTokenAge + skew + time.Second, 0, oidc.CodeIDTokenIssuedAt},
		{"iat exactly at the age bound", 0, oidc.MaxIDTokenAge + skew, 0, ""},
		{"iat a second within the age bound", 0, oidc.MaxIDTokenAge + skew - time.Second, 0, ""},
		{"iat exactly the skew ahead", 0, -skew, 0, ""},
		{"iat a second beyond the skew ahead", 0, -skew - time.Second, 0, oidc.CodeIDTokenIssuedAt},
		{"nbf a second ahead", 0, time.Minute, time.Second, ""},
		{"nbf exactly the skew ahead", 0, time.Minute, skew, ""},
		{"nbf a second beyond the skew ahead", 0, time.Minute, skew + time.Second, oidc.CodeIDTokenNotBefore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			now := time.Now().Truncate(time.Second)
			e.clock.mu.Lock()
			e.clock.t = now
			e.clock.mu.Unlock()
			e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
				if tc.exp != 0 {
					tok.Claims["exp"] = now.Add(tc.exp).Unix()
				}
				iat := now.Add(-tc.age).Unix()
				tok.Claims["iat"] = iat
				tok.Claims["auth_time"] = iat
				if tc.nbf != 0 {
					tok.Claims["nbf"] = now.Add(tc.nbf).Unix()
				}
			}})
			wantCode(t, e.login(newBrowser()), tc.want)
		})
	}
}
