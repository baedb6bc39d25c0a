package oidctest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

const (
	redirect = "https://rp.example/callback"
	verifier = "0123456789012345678901234567890123456789abc" // 43 chars
)

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func start(t *testing.T) *oidctest.Server {
	t.Helper()
	s, err := oidctest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.AddUser("bob", "pw", map[string]any{"email": "bob@example.com"})
	s.AddClient("app", "secret", redirect)
	return s
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func authParams() url.Values {
	return url.Values{
		"client_id": {"app"}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid email"},
		"state": {"st"}, "nonce": {"no"}, "code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"},
	}
}

// code logs bob in and returns the authorization code.
func code(t *testing.T, s *oidctest.Server) string {
	t.Helper()
	form := authParams()
	form.Set("username", "bob")
	form.Set("password", "pw")
	resp, err := noRedirect.PostForm(s.Issuer+oidctest.PathAuthorize, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if resp.StatusCode != http.StatusFound || q.Get("code") == "" || q.Get("state") != "st" || q.Get("iss") != s.Issuer {
		t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
	}
	return q.Get("code")
}

type tokenResp struct {
	status int
	Error  string `json:"error"`
	Access string `json:"access_token"`
	ID     string `json:"id_token"`
}

func exchange(t *testing.T, s *oidctest.Server, form url.Values, basic bool) tokenResp {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.Issuer+oidctest.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth("app", "secret")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResp
	json.NewDecoder(resp.Body).Decode(&tr)
	tr.status = resp.StatusCode
	return tr
}

func tokenForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
}

func TestToken(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(f url.Values, s *oidctest.Server)
		basic     bool
		wantError string
	}{
		{"basic auth", nil, true, ""},
		{"client_secret_post", func(f url.Values, _ *oidctest.Server) { f.Set("client_id", "app"); f.Set("client_secret", "secret") }, false, ""},
		{"both methods", func(f url.Values, _ *oidctest.Server) { f.Set("client_secret", "secret") }, true, "invalid_client"},
		{"wrong secret", func(f url.Values, _ *oidctest.Server) { f.Set("client_id", "app"); f.Set("client_secret", "nope") }, false, "invalid_client"},
		{"wrong PKCE verifier", func(f url.Values, _ *oidctest.Server) { f.Set("code_verifier", strings.Repeat("x", 43)) }, true, "invalid_grant"},
		{"no PKCE verifier", func(f url.Values, _ *oidctest.Server) { f.Del("code_verifier") }, true, "invalid_grant"},
		{"other redirect_uri", func(f url.Values, _ *oidctest.Server) { f.Set("redirect_uri", "https://rp.example/other") }, true, "invalid_grant"},
		{"unknown code", func(f url.Values, _ *oidctest.Server) { f.Set("code", "nope") }, true, "invalid_grant"},
		{"expired code", func(f url.Values, s *oidctest.Server) {
			s.SetClock(func() time.Time { return time.Now().Add(61 * time.Second) })
		}, true, "invalid_grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			f := tokenForm(code(t, s))
			if tc.edit != nil {
				tc.edit(f, s)
			}
			tr := exchange(t, s, f, tc.basic)
			if tr.Error != tc.wantError || (tc.wantError == "" && (tr.ID == "" || tr.Access == "")) {
				t.Fatalf("token: %d %+v, want error %q", tr.status, tr, tc.wantError)
			}
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	s := start(t)
	f := tokenForm(code(t, s))
	first := exchange(t, s, f, true)
	if first.Error != "" {
		t.Fatalf("first exchange: %+v", first)
	}
	if again := exchange(t, s, f, true); again.Error != "invalid_grant" {
		t.Fatalf("reused code: %+v, want invalid_grant", again)
	}
	// The reuse revoked the access token issued from the code.
	req, _ := http.NewRequest(http.MethodGet, s.Issuer+oidctest.PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+first.Access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo after code reuse: %d, want 401", resp.StatusCode)
	}
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(url.Values)
		wantStatus int
		wantError  string // error parameter of the redirect
	}{
		{"login form", func(url.Values) {}, http.StatusOK, ""},
		{"unknown client is not redirected", func(q url.Values) { q.Set("client_id", "nope") }, http.StatusBadRequest, ""},
		{"unregistered redirect_uri is not redirected", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/") }, http.StatusBadRequest, ""},
		{"implicit flow", func(q url.Values) { q.Set("response_type", "token") }, http.StatusFound, "unsupported_response_type"},
		{"no PKCE", func(q url.Values) { q.Del("code_challenge") }, http.StatusFound, "invalid_request"},
		{"PKCE plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, http.StatusFound, "invalid_request"},
		{"no openid scope", func(q url.Values) { q.Set("scope", "email") }, http.StatusFound, "invalid_scope"},
		{"prompt none without session", func(q url.Values) { q.Set("prompt", "none") }, http.StatusFound, "login_required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t)
			q := authParams()
			tc.edit(q)
			resp, err := noRedirect.Get(s.Issuer + oidctest.PathAuthorize + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusOK {
				for _, id := range []string{`id="username"`, `id="password"`, `id="login"`, `value="st"`} {
					if !strings.Contains(string(body), id) {
						t.Errorf("login form lacks %s", id)
					}
				}
			}
			if tc.wantStatus == http.StatusFound {
				loc, _ := url.Parse(resp.Header.Get("Location"))
				if !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("error") != tc.wantError || loc.Query().Get("iss") != s.Issuer {
					t.Errorf("redirect %s, want error %q", loc, tc.wantError)
				}
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	s := start(t)
	form := authParams()
	form.Set("username", "bob")
	form.Set("password", "wrong")
	resp, err := noRedirect.PostForm(s.Issuer+oidctest.PathAuthorize, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401 with the form again", resp.StatusCode)
	}
}

func TestClaimsRotationAndHooks(t *testing.T) {
	s := start(t)
	kid := s.SigningKeyID()
	if err := s.SetClaims("bob", map[string]any{"sub": "b-1", "email": "new@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClaims("nobody", nil); err == nil {
		t.Error("SetClaims of an unknown user succeeded")
	}
	if err := s.RotateKey(); err != nil || s.SigningKeyID() == kid {
		t.Fatalf("RotateKey: %v", err)
	}
	s.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Alg = "none"; tok.Claims["aud"] = "x" }})
	raw, err := s.SignIDToken("app", "bob", "n")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[2] != "" {
		t.Fatalf("alg none token = %q", raw)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	if !strings.Contains(string(hdr), `"alg":"none"`) || claims["aud"] != "x" || claims["sub"] != "b-1" || claims["email"] != "new@example.com" {
		t.Errorf("header %s claims %v", hdr, claims)
	}

	resp, err := http.Get(s.Issuer + oidctest.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct{ Keys []struct{ Kid string } }
	json.NewDecoder(resp.Body).Decode(&jwks)
	if len(jwks.Keys) != 1 || jwks.Keys[0].Kid != s.SigningKeyID() {
		t.Errorf("JWKS after rotation: %+v", jwks)
	}
}

func TestPrefixMatchAndEndSession(t *testing.T) {
	s := start(t)
	s.RegisterClient(oidctest.Client{ID: "demo", Secret: "x", RedirectURIs: []string{"http://127.0.0.1:"}, PrefixMatch: true,
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:"}})
	q := authParams()
	q.Set("client_id", "demo")
	q.Set("redirect_uri", "http://127.0.0.1:4567/.sso/oidc/demo/callback")
	resp, err := noRedirect.Get(s.Issuer + oidctest.PathAuthorize + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("prefix-matched redirect_uri refused: %d", resp.StatusCode)
	}

	for _, tc := range []struct {
		post string
		want int
	}{
		{"http://127.0.0.1:4567/bye", http.StatusFound},
		{"https://evil.example/", http.StatusOK},
	} {
		u := s.Issuer + oidctest.PathEndSession + "?" + url.Values{"client_id": {"demo"}, "post_logout_redirect_uri": {tc.post}}.Encode()
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("end_session to %s: %d, want %d", tc.post, resp.StatusCode, tc.want)
		}
	}
}

func TestUnavailableAndConcurrency(t *testing.T) {
	s := start(t)
	s.SetUnavailable(true)
	resp, err := http.Get(s.Issuer + oidctest.PathDiscovery)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || s.Requests(oidctest.PathDiscovery) != 1 {
		t.Fatalf("unavailable: %d, %d requests", resp.StatusCode, s.Requests(oidctest.PathDiscovery))
	}
	s.SetUnavailable(false)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, err := http.Get(s.Issuer + oidctest.PathDiscovery)
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := s.Requests(oidctest.PathDiscovery); n != 9 {
		t.Errorf("%d requests counted, want 9", n)
	}
}

// TestPartialOutageAndStall: one endpoint down leaves the others up; a
// stalled endpoint answers only after release, and a client that gives up
// is let go.
func TestPartialOutageAndStall(t *testing.T) {
	s := start(t)
	status := func(c *http.Client, path string) int {
		resp, err := c.Get(s.Issuer + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	s.SetUnavailable(true, oidctest.PathJWKS)
	if got, disc := status(http.DefaultClient, oidctest.PathJWKS), status(http.DefaultClient, oidctest.PathDiscovery); got != http.StatusServiceUnavailable || disc != http.StatusOK {
		t.Fatalf("JWKS down: jwks %d, discovery %d", got, disc)
	}
	s.SetUnavailable(false)
	if got := status(http.DefaultClient, oidctest.PathJWKS); got != http.StatusOK {
		t.Fatalf("JWKS after the outage: %d", got)
	}

	release := s.Stall(oidctest.PathJWKS)
	if got := status(&http.Client{Timeout: 200 * time.Millisecond}, oidctest.PathJWKS); got != 0 {
		t.Fatalf("stalled JWKS answered %d", got)
	}
	if got := status(http.DefaultClient, oidctest.PathDiscovery); got != http.StatusOK {
		t.Fatalf("discovery during a JWKS stall: %d", got)
	}
	answered := make(chan int)
	go func() { answered <- status(http.DefaultClient, oidctest.PathJWKS) }()
	select {
	case got := <-answered:
		t.Fatalf("stalled JWKS answered %d before release", got)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if got := <-answered; got != http.StatusOK {
		t.Fatalf("JWKS after release: %d", got)
	}
}
