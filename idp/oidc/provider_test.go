package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	wantCode(t, e.login(newBrowser()), "")
	if n := e.idp.Requests(oidctest.PathJWKS); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	if err := e.idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	// Within the refresh interval the new kid cannot be fetched yet: the
	// sign-in is refused as one to try again shortly, not as forged.
	wantCode(t, e.login(newBrowser()), oidc.CodeSigningKeyPending)
	if n := e.idp.Requests(oidctest.PathJWKS); n != 1 {
		t.Fatalf("JWKS fetched %d times within the interval, want 1", n)
	}
	e.clock.Add(31 * time.Second)
	// Several logins with the new kid at once: one refresh serves them all.
	const n = 6
	browsers, cbs := make([]*browser, n), make([]string, n)
	for i := range n {
		browsers[i] = newBrowser()
		cbs[i] = e.authorize(browsers[i], e.begin(browsers[i], "/"), "alice")
	}
	var wg sync.WaitGroup
	codes := make([]string, n)
	for i := range n {
		wg.Go(func() {
			res, err := e.callback(browsers[i], cbs[i])
			codes[i] = res.Code
			if err != nil {
				codes[i] = err.Error()
			}
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != "" {
			t.Errorf("login %d after rotation: %q", i, c)
		}
	}
	wantCode(t, e.login(newBrowser()), "") // now cached
	if n := e.idp.Requests(oidctest.PathJWKS); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refresh for the new kid)", n)
	}
}

// TestJWKSRefreshRateLimit: a flood of ID tokens under a kid the IdP does
// not publish fetches the JWKS once per refresh interval. The tokens the
// fetch found no key for are refused as forged (id_token_signature); those
// held back by the limit, as pending (signing_key_pending: the kid might
// be the IdP's new key), never with a fetch of their own.
func TestJWKSRefreshRateLimit(t *testing.T) {
	e := newEnv(t)
	wantCode(t, e.login(newBrowser()), "")
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Key = foreign }})

	for window := 1; window <= 2; window++ {
		e.clock.Add(31 * time.Second)
		// Prepare a flood of callbacks, then deliver them all at once.
		const n = 8
		browsers, cbs := make([]*browser, n), make([]string, n)
		for i := range n {
			browsers[i] = newBrowser()
			cbs[i] = e.authorize(browsers[i], e.begin(browsers[i], "/"), "alice")
		}
		var wg sync.WaitGroup
		codes := make([]string, n)
		for i := range n {
			wg.Go(func() {
				res, err := e.callback(browsers[i], cbs[i])
				if err != nil {
					codes[i] = err.Error()
					return
				}
				codes[i] = res.Code
			})
		}
		wg.Wait()
		forged := 0
		for i, c := range codes {
			switch c {
			case oidc.CodeIDTokenSignature:
				forged++
			case oidc.CodeSigningKeyPending:
			default:
				t.Errorf("window %d, token %d: code %q", window, i, c)
			}
		}
		if forged == 0 {
			t.Errorf("window %d: no token refused as forged after the fetch: %q", window, codes)
		}
		if got, want := e.idp.Requests(oidctest.PathJWKS), 1+window; got != want {
			t.Fatalf("after window %d: %d JWKS fetches, want %d", window, got, want)
		}
	}
}

func TestDiscoveryIsLazyAndRetried(t *testing.T) {
	e := newEnv(t)
	if n := e.idp.Requests(oidctest.PathDiscovery); n != 0 {
		t.Fatalf("New made %d discovery requests", n)
	}
	beginCode := func() string {
		t.Helper()
		resp, err := e.startLogin(newBrowser(), "/")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusFound {
			return "begin failed"
		}
		return ""
	}
	e.idp.SetUnavailable(true)
	if err := e.p.Discover(context.Background()); codeOf(err) != oidc.CodeIdPUnavailable {
		t.Fatalf("Discover with the IdP down: %v", err)
	}
	e.idp.SetUnavailable(false)
	if err := e.p.Discover(context.Background()); codeOf(err) != oidc.CodeIdPUnavailable {
		t.Fatalf("retried before the back-off elapsed: %v", err)
	}
	if n := e.idp.Requests(oidctest.PathDiscovery); n != 1 {
		t.Fatalf("%d discovery requests during back-off, want 1", n)
	}
	e.clock.Add(11 * time.Second)
	if c := beginCode(); c != "" {
		t.Fatalf("Begin after the IdP came back: %q", c)
	}
	// Later outages keep the last good document, which serves while it
	// is fetched again in the background.
	e.idp.SetUnavailable(true)
	e.clock.Add(25 * time.Hour)
	if c := beginCode(); c != "" {
		t.Fatalf("Begin with a stale document: %q", c)
	}
	for deadline := time.Now().Add(10 * time.Second); e.idp.Requests(oidctest.PathDiscovery) < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.idp.Requests(oidctest.PathDiscovery); n != 3 {
		t.Fatalf("%d discovery requests, want 3: the stale document was not fetched again", n)
	}
}

func TestBeginFailsWhileIdPDown(t *testing.T) {
	e := newEnv(t)
	e.idp.SetUnavailable(true)
	b := newBrowser()
	resp, err := b.Get(e.rp.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	wantCode(t, res, oidc.CodeIdPUnavailable)
	if len(flowCookies(b.cookies(e.rp.URL))) != 0 {
		t.Error("a failed Begin left a flow cookie")
	}
}

// TestDiscoveryRejects: a discovery document that contradicts the
// configuration fails sign-in as misconfigured (an administrator must
// act), unlike an IdP that cannot be reached (TestDiscoveryUnavailable).
func TestDiscoveryRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(map[string]any)
	}{
		{"issuer of another provider", func(d map[string]any) { d["issuer"] = "https://evil.example" }},
		{"issuer with a trailing slash", func(d map[string]any) { d["issuer"] = d["issuer"].(string) + "/" }},
		{"no PKCE S256", func(d map[string]any) { d["code_challenge_methods_supported"] = []string{"plain"} }},
		{"plain http token endpoint off loopback", func(d map[string]any) { d["token_endpoint"] = "http://idp.example/token" }},
		{"no jwks_uri", func(d map[string]any) { delete(d, "jwks_uri") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.SetHooks(oidctest.Hooks{Discovery: tc.edit})
			if err := e.p.Discover(context.Background()); codeOf(err) != idp.CodeMisconfigured {
				t.Fatalf("Discover = %v, want %s", err, idp.CodeMisconfigured)
			}
		})
	}
}

func TestTokenExchangeFailure(t *testing.T) {
	e := newEnv(t, func(c *oidc.Config) { c.ClientSecret = "wrong-secret" })
	res := e.login(newBrowser())
	wantCode(t, res, oidc.CodeTokenExchange)
	if strings.Contains(res.Err, "wrong-secret") {
		t.Errorf("error reveals the client secret: %s", res.Err)
	}
}

func TestNewValidates(t *testing.T) {
	base := oidc.Config{Name: "x", Issuer: "https://idp.example", ClientID: "c", ClientSecret: "s"}
	tests := []struct {
		name string
		edit func(*oidc.Config)
		ok   bool
	}{
		{"https", func(c *oidc.Config) {}, true},
		{"http on 127.0.0.1", func(c *oidc.Config) { c.Issuer = "http://127.0.0.1:9000" }, true},
		{"http on 127.5.6.7", func(c *oidc.Config) { c.Issuer = "http://127.5.6.7/realms/x" }, true},
		{"http on ::1", func(c *oidc.Config) { c.Issuer = "http://[::1]:8080" }, true},
		{"http on localhost", func(c *oidc.Config) { c.Issuer = "http://localhost:8080" }, true},
		{"http elsewhere", func(c *oidc.Config) { c.Issuer = "http://idp.example" }, false},
		{"http on a name that looks local", func(c *oidc.Config) { c.Issuer = "http://127.0.0.1.evil.example" }, false},
		{"issuer with query", func(c *oidc.Config) { c.Issuer = "https://idp.example/?x=1" }, false},
		{"relative issuer", func(c *oidc.Config) { c.Issuer = "/idp" }, false},
		{"no name", func(c *oidc.Config) { c.Name = "" }, false},
		{"no client ID", func(c *oidc.Config) { c.ClientID = "" }, false},
		{"alg none", func(c *oidc.Config) { c.Algorithms = []string{"RS256", "none"} }, false},
		{"unknown alg", func(c *oidc.Config) { c.Algorithms = []string{"RS1"} }, false},
		{"HS256 without secret", func(c *oidc.Config) { c.Algorithms = []string{"HS256"}; c.ClientSecret = "" }, false},
		{"HS256 with a short secret", func(c *oidc.Config) { c.Algorithms = []string{"HS256"}; c.ClientSecret = "short" }, false},
		{"HS256 with a long secret", func(c *oidc.Config) { c.Algorithms = []string{"HS256"}; c.ClientSecret = strings.Repeat("s", 32) }, true},
		{"scopes without openid", func(c *oidc.Config) { c.Scopes = []string{"profile"} }, false},
		{"auth param overriding nonce", func(c *oidc.Config) { c.AuthParams = map[string]string{"nonce": "fixed"} }, false},
		{"auth param prompt", func(c *oidc.Config) { c.AuthParams = map[string]string{"prompt": "select_account"} }, true},
		{"negative skew", func(c *oidc.Config) { c.ClockSkew = -time.Second }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := oidc.New(cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v", err)
			}
		})
	}
	p, err := oidc.New(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), idp.Runtime{}); err == nil {
		t.Error("Start without flow cookies")
	}
}

func TestAuthParams(t *testing.T) {
	e := newEnv(t, func(c *oidc.Config) {
		c.AuthParams = map[string]string{"login_hint": "alice@example.com"}
		c.Scopes = []string{"openid", "email", "groups"}
	})
	u, _ := url.Parse(e.begin(newBrowser(), "/"))
	if q := u.Query(); q.Get("login_hint") != "alice@example.com" || q.Get("scope") != "openid email groups" {
		t.Errorf("authorization request = %v", q)
	}
}
