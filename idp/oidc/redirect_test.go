package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-sso/caddy-sso/idp"
)

// redirectIdP is an IdP at https://example.com (an httptest TLS server)
// whose endpoints answer with the redirects a test sets, and a plain-http
// server that the client reaches for every address but example.com:443:
// the leg of a redirect to http://example.com/..., which anyone on the
// network path could answer. The plain server serves the attacker's JWKS
// and takes whatever is POSTed to it.
type redirectIdP struct {
	client *http.Client // the Config.HTTPClient: dials as described above

	mu        sync.Mutex
	redirects map[string]redirect // path at https://example.com → where it redirects
	keys      jose.JSONWebKeySet  // served at https://example.com/keys
	evil      jose.JSONWebKeySet  // served by the plain-http server
	https     []string            // requests the TLS server saw, "METHOD path"
	plain     []string            // requests the plain-http server saw, with their credentials
}

type redirect struct {
	to     string
	status int
}

func newRedirectIdP(t *testing.T) *redirectIdP {
	t.Helper()
	r := &redirectIdP{redirects: map[string]redirect{}}
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.https = append(r.https, req.Method+" "+req.URL.Path)
		to, redirected := r.redirects[req.URL.Path]
		keys := r.keys
		r.mu.Unlock()
		if redirected {
			http.Redirect(w, req, to.to, to.status)
			return
		}
		switch req.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": "https://example.com",
				"authorization_endpoint": "https://example.com/authorize", "token_endpoint": "https://example.com/token",
				"jwks_uri": "https://example.com/jwks", "code_challenge_methods_supported": []string{"S256"}})
		case "/keys":
			json.NewEncoder(w).Encode(keys)
		default:
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		}
	}))
	t.Cleanup(tlsSrv.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req.ParseForm()
		r.mu.Lock()
		r.plain = append(r.plain, req.Method+" "+req.URL.Path+" Authorization="+req.Header.Get("Authorization")+" body="+req.PostForm.Encode())
		evil := r.evil
		r.mu.Unlock()
		if req.URL.Path == "/jwks" {
			json.NewEncoder(w).Encode(evil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "a", "token_type": "Bearer", "id_token": "x.y.z", "refresh_token": "r2"})
	}))
	t.Cleanup(plain.Close)
	tr := tlsSrv.Client().Transport.(*http.Transport).Clone() // trusts the TLS server's certificate, for example.com
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "example.com:443" {
			addr = tlsSrv.Listener.Addr().String()
		} else {
			addr = plain.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	r.client = &http.Client{Transport: tr}
	return r
}

func (r *redirectIdP) redirect(path, to string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.redirects[path] = redirect{to, status}
}

func (r *redirectIdP) seen() (https, plain []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.https...), append([]string(nil), r.plain...)
}

func (r *redirectIdP) provider(t *testing.T) *Provider {
	t.Helper()
	p, err := New(Config{Name: "x", Issuer: "https://example.com", ClientID: "app",
		ClientSecret: "app-secret-0123456789abcdef", HTTPClient: r.client})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJWKSRedirectDowngrade: the IdP's https jwks_uri answers with a
// redirect to plain http. It must not be followed: whoever answers that
// leg would supply the keys that ID tokens and logout tokens verify with.
// A redirect to another https URL is still followed.
func TestJWKSRedirectDowngrade(t *testing.T) {
	good, goodJWK := rsaKey(t, "good", "RS256")
	evil, evilJWK := rsaKey(t, "evil", "RS256")

	t.Run("to http", func(t *testing.T) {
		r := newRedirectIdP(t)
		r.evil = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{evilJWK}}
		r.redirect("/jwks", "http://example.com/jwks", http.StatusFound)
		p := r.provider(t)
		if payload, err := p.keys.VerifySignature(context.Background(), signJWT(t, evil, "evil", jose.RS256)); err == nil {
			t.Errorf("a token signed with the key served over plain http verifies: %s", payload)
		}
		if _, plain := r.seen(); len(plain) > 0 {
			t.Errorf("the redirect to plain http was followed: %q", plain)
		}
	})
	t.Run("to https", func(t *testing.T) {
		r := newRedirectIdP(t)
		r.keys = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{goodJWK}}
		r.redirect("/jwks", "https://example.com/keys", http.StatusFound)
		p := r.provider(t)
		if _, err := p.keys.VerifySignature(context.Background(), signJWT(t, good, "good", jose.RS256)); err != nil {
			t.Errorf("JWKS behind an https redirect: %v", err)
		}
	})
}

// TestTokenRedirect: the token endpoint answers the code exchange and the
// refresh with a 307, which would have the client POST the code (or the
// refresh token) and its secret again to wherever the Location points.
// Plain http must never see them; and as RFC 6749 gives the token endpoint
// no redirects, none is followed, not even to https.
func TestTokenRedirect(t *testing.T) {
	for _, tc := range []struct{ name, to string }{
		{"to http", "http://example.com/token"},
		{"to https", "https://example.com/elsewhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRedirectIdP(t)
			r.redirect("/token", tc.to, http.StatusTemporaryRedirect)
			p := r.provider(t)
			fl := &flow{Nonce: "n", Verifier: "v", RedirectURL: "https://app.test/callback"}
			_, err := p.finish(context.Background(), url.Values{"code": {"the-code"}, "state": {"s"}}, fl, fl.RedirectURL)
			var le *idp.LoginError
			if !errors.As(err, &le) || le.Code != CodeTokenExchange {
				t.Errorf("code exchange = %v, want %s", err, CodeTokenExchange)
			}
			if _, err := p.Refresh(context.Background(), &idp.Tokens{RefreshToken: "the-refresh-token"}); err == nil {
				t.Error("refresh succeeded")
			}
			https, plain := r.seen()
			if len(plain) > 0 {
				t.Errorf("the token request was sent over plain http: %q", plain)
			}
			for _, s := range https {
				if s == "POST /elsewhere" {
					t.Error("the token request followed a redirect")
				}
			}
			if n := countOf(https, "POST /token"); n != 2 {
				t.Errorf("token endpoint saw %d requests, want 2 (exchange, refresh): %q", n, https)
			}
		})
	}
}

func countOf(ss []string, s string) (n int) {
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// TestProbeJWKSRedirectDowngrade: `caddy sso check` judges the JWKS as
// sign-in fetches it, so the redirect to plain http is refused there too.
func TestProbeJWKSRedirectDowngrade(t *testing.T) {
	r := newRedirectIdP(t)
	_, evilJWK := rsaKey(t, "evil", "RS256")
	r.evil = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{evilJWK}}
	r.redirect("/jwks", "http://example.com/jwks", http.StatusFound)
	res, err := Probe(context.Background(), r.client, "https://example.com")
	if err != nil {
		t.Fatal(err)
	}
	if res.JWKSErr == nil || res.SigningKeys != 0 {
		t.Errorf("JWKS behind a redirect to plain http: %d keys, err %v", res.SigningKeys, res.JWKSErr)
	}
	if _, plain := r.seen(); len(plain) > 0 {
		t.Errorf("the redirect to plain http was followed: %q", plain)
	}
}
