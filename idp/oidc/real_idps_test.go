package oidc_test

// How real OpenID providers speak, beyond the letter of the specification:
// Google's scheme-less issuer, userinfo endpoints that refuse the access
// token (Entra ID with an API scope), Entra ID's multi-tenant endpoints,
// token endpoints in an outage, and documents with a byte order mark.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
)

// newEnvAt is newEnv with the IdP at issuer (any host, https allowed; ""
// is the local server's own URL), served through wrap when it is not
// nil, and reached, by the relying party and by the browser browserVia
// returns, over a transport that sends every connection for the issuer's
// host to the local server.
func newEnvAt(t *testing.T, issuer string, tlsOn bool, wrap func(http.Handler) http.Handler, opts ...func(*oidc.Config)) (*env, *http.Transport) {
	t.Helper()
	var srv *oidctest.Server
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { srv.ServeHTTP(w, r) })
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewUnstartedServer(h)
	if tlsOn {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	if issuer == "" {
		issuer = ts.URL
	}
	var err error
	if srv, err = oidctest.NewServer(issuer); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(issuer, "https://"), "http://")
	host, _, _ = strings.Cut(host, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsOn {
		tr = ts.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		tr.TLSClientConfig.ServerName = "example.com" // in httptest's certificate
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h, _, _ := net.SplitHostPort(addr); h == host || addr == host {
			addr = ts.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	client := func(c *oidc.Config) { c.HTTPClient = &http.Client{Transport: tr, Timeout: 10 * time.Second} }
	return startEnv(t, srv, append([]func(*oidc.Config){client}, opts...)...), tr
}

func browserVia(tr *http.Transport) *browser {
	b := newBrowser()
	b.Transport = tr
	return b
}

// answerAt makes the endpoint at path (an oidctest Path* constant) answer
// with answer instead of the IdP; everything else reaches the IdP.
func answerAt(path string, answer http.HandlerFunc) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, path) {
				answer(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// status answers code with the headers given (name, value, …) and body.
func status(code int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		w.Write([]byte(body))
	}
}

// hangUp closes the connection without answering: a transport failure.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// partAnswer sends 200 and the start of a JSON body shorter than its
// Content-Length, then ends it with then.
func partAnswer(then func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "400")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"access_token":"abc`))
		w.(http.Flusher).Flush()
		then(w, r)
	}
}

// stall waits until the client gives up (or a minute has passed).
func stall(_ http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
}

// googleEnv is an IdP at https://accounts.google.com whose discovery
// document is Google's shape (no end-session endpoint, no RFC 9207 iss),
// issuing ID tokens with iss set to iss.
func googleEnv(t *testing.T, iss string, opts ...func(*oidc.Config)) (*env, *http.Transport) {
	t.Helper()
	e, tr := newEnvAt(t, "https://accounts.google.com", true, nil, opts...)
	e.idp.SetSendIss(false)
	e.idp.SetHooks(googleHooks(iss))
	return e, tr
}

func googleHooks(iss string) oidctest.Hooks {
	return oidctest.Hooks{
		Discovery: func(m map[string]any) {
			delete(m, "end_session_endpoint")
			delete(m, "authorization_response_iss_parameter_supported")
		},
		IDToken: func(tok *oidctest.Token) { tok.Claims["iss"] = iss },
	}
}

// TestGoogleSchemelessIssuer: Google documents that an ID token's iss is
// "https://accounts.google.com" or "accounts.google.com", and that clients
// must accept both; with the issuer configured as Google's, both sign in.
func TestGoogleSchemelessIssuer(t *testing.T) {
	for _, iss := range []string{"https://accounts.google.com", "accounts.google.com"} {
		t.Run(iss, func(t *testing.T) {
			e, tr := googleEnv(t, iss)
			b := browserVia(tr)
			res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
			wantCode(t, res, "")
			if res.Assertion.Subject != "alice-sub" {
				t.Errorf("subject %q", res.Assertion.Subject)
			}
		})
	}
}

// TestGoogleSchemelessIssuerRefresh: a refreshed ID token with the
// scheme-less iss is Google's too, not another issuer's: the session
// keeps its grant and takes the new token.
func TestGoogleSchemelessIssuerRefresh(t *testing.T) {
	e, tr := googleEnv(t, "https://accounts.google.com", func(c *oidc.Config) { c.OfflineAccess = true })
	b := browserVia(tr)
	res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
	wantCode(t, res, "")
	tok := &idp.Tokens{IDToken: res.Tokens.ID, AccessToken: res.Tokens.Access, RefreshToken: res.Tokens.Refresh}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	e.idp.SetHooks(googleHooks("accounts.google.com"))
	out, err := e.p.Refresh(context.Background(), tok)
	if err != nil {
		t.Fatalf("refresh with iss accounts.google.com: %v", err)
	}
	if out.IDToken == tok.IDToken {
		t.Error("the refreshed ID token was not taken")
	}
}

// TestSchemelessIssuerOnlyForGoogle: no other issuer gets that leeway,
// nor Google's issuer another scheme.
func TestSchemelessIssuerOnlyForGoogle(t *testing.T) {
	t.Run("another issuer without its scheme", func(t *testing.T) {
		e := newEnv(t)
		e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
			tok.Claims["iss"] = strings.TrimPrefix(e.idp.Issuer, "http://")
		}})
		wantCode(t, e.login(newBrowser()), oidc.CodeIDTokenIssuer)
	})
	t.Run("an https issuer without its scheme", func(t *testing.T) {
		e, tr := newEnvAt(t, "", true, nil)
		e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) {
			tok.Claims["iss"] = strings.TrimPrefix(e.idp.Issuer, "https://")
		}})
		b := browserVia(tr)
		wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), oidc.CodeIDTokenIssuer)
	})
	t.Run("Google's over http", func(t *testing.T) {
		e, tr := googleEnv(t, "http://accounts.google.com")
		b := browserVia(tr)
		wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), oidc.CodeIDTokenIssuer)
	})
	t.Run("Google's scheme-less for another issuer", func(t *testing.T) {
		e := newEnv(t)
		e.idp.SetHooks(oidctest.Hooks{IDToken: func(tok *oidctest.Token) { tok.Claims["iss"] = "accounts.google.com" }})
		wantCode(t, e.login(newBrowser()), oidc.CodeIDTokenIssuer)
	})
}

func noGivenName(tok *oidctest.Token) { delete(tok.Claims, "given_name") }

// TestUserinfoRefusedSignsIn: userinfo, asked because the ID token lacks
// given_name, refuses the access token (Entra ID's Graph userinfo does
// for a token issued for the application's own API). That refusal would
// last as long as the configuration: the person signs in with the ID
// token's claims, and one WARN a minute says why the claim is empty.
func TestUserinfoRefusedSignsIn(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			const challenge = `Bearer error="invalid_token", error_description="audience is not Graph"`
			e, tr := newEnvAt(t, "", false, answerAt(oidctest.PathUserinfo, status(code, "", "WWW-Authenticate", challenge)),
				func(c *oidc.Config) { c.Logger = zap.New(core) })
			e.idp.SetHooks(oidctest.Hooks{IDToken: noGivenName})
			for range 2 {
				b := browserVia(tr)
				res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
				wantCode(t, res, "")
				a := res.Assertion
				if _, ok := a.Attributes["given_name"]; ok {
					t.Errorf("given_name %q from nowhere", a.Attributes["given_name"])
				}
				if got := a.Attributes["family_name"]; len(got) != 1 || got[0] != "Liddell" {
					t.Errorf("family_name %q, want the ID token's", got)
				}
			}
			warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if len(warns) != 1 {
				t.Fatalf("%d WARN lines for two sign-ins, want 1 (the second at DEBUG): %v", len(warns), warns)
			}
			f := warns[0].ContextMap()
			if !strings.Contains(warns[0].Message, "userinfo refused the access token") || f["www_authenticate"] != challenge ||
				f["status"] != fmt.Sprintf("%d %s", code, http.StatusText(code)) {
				t.Errorf("WARN %q %v", warns[0].Message, f)
			}
			if m, _ := f["missing_claims"].([]any); len(m) != 1 || m[0] != "given_name" {
				t.Errorf("missing_claims %v, want [given_name]", f["missing_claims"])
			}
			if n := len(logs.FilterLevelExact(zapcore.DebugLevel).FilterMessageSnippet("userinfo refused").All()); n != 1 {
				t.Errorf("%d DEBUG lines for the second refusal, want 1", n)
			}
		})
	}
}

// TestUserinfoOutageIsUnavailable: userinfo failing rather than refusing
// (a 5xx, 429, no answer) is the IdP unavailable (the 502 page, trying
// again may help), not a failed sign-in.
func TestUserinfoOutageIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer http.HandlerFunc
	}{
		{"500", status(http.StatusInternalServerError, "oops")},
		{"503", status(http.StatusServiceUnavailable, "")},
		{"429 with Retry-After", status(http.StatusTooManyRequests, "", "Retry-After", "30")},
		{"connection closed", hangUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tr := newEnvAt(t, "", false, answerAt(oidctest.PathUserinfo, tc.answer))
			e.idp.SetHooks(oidctest.Hooks{IDToken: noGivenName})
			b := browserVia(tr)
			wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), oidc.CodeIdPUnavailable)
		})
	}
}

// TestUserinfoFailures: what is neither a refusal of the token nor an
// outage still fails the sign-in, and so does an answer about another
// subject whatever else it says.
func TestUserinfoFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer http.HandlerFunc
		want   string
	}{
		{"404", status(http.StatusNotFound, ""), oidc.CodeUserinfo},
		{"not JSON", status(http.StatusOK, "<html>", "Content-Type", "text/html"), oidc.CodeUserinfo},
		{"redirect to plain http", status(http.StatusFound, "", "Location", "http://example.com/userinfo"), oidc.CodeUserinfo},
		{"another subject", status(http.StatusOK, `{"sub":"mallory","given_name":"M"}`, "Content-Type", "application/json"), oidc.CodeUserinfoSubject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tr := newEnvAt(t, "", false, answerAt(oidctest.PathUserinfo, tc.answer))
			e.idp.SetHooks(oidctest.Hooks{IDToken: noGivenName})
			b := browserVia(tr)
			wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), tc.want)
		})
	}
}

// TestSignedUserinfo: a userinfo endpoint that answers with a JWT
// (application/jwt, OpenID Connect Core 5.3.2) is verified with the IdP's
// keys and the algorithm allow-list, and its claims are merged only when
// its iss is the issuer and its aud names this client; anything else
// fails the sign-in (CodeUserinfo) rather than take claims another
// issuer, or a token for another client, asserts.
func TestSignedUserinfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(tok *oidctest.Token)
		want string
	}{
		{"of the issuer, for this client", func(*oidctest.Token) {}, ""},
		{"of another issuer", func(tok *oidctest.Token) { tok.Claims["iss"] = "https://evil.example" }, oidc.CodeUserinfo},
		{"for another client", func(tok *oidctest.Token) { tok.Claims["aud"] = "other-app" }, oidc.CodeUserinfo},
		{"unsigned (alg none)", func(tok *oidctest.Token) { tok.Alg = "none" }, oidc.CodeUserinfo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *env
			var tr *http.Transport
			e, tr = newEnvAt(t, "", false, answerAt(oidctest.PathUserinfo, func(w http.ResponseWriter, _ *http.Request) {
				tok := &oidctest.Token{Alg: "RS256", Claims: map[string]any{
					"sub": "alice-sub", "given_name": "Alice (signed)", "iss": e.idp.Issuer, "aud": clientID,
				}}
				tc.edit(tok)
				raw, err := e.idp.SignToken(clientID, tok)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				w.Header().Set("Content-Type", "application/jwt")
				w.Write([]byte(raw))
			}))
			e.idp.SetHooks(oidctest.Hooks{IDToken: noGivenName})
			b := browserVia(tr)
			res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
			wantCode(t, res, tc.want)
			if tc.want == "" && res.Assertion.First("given_name") != "Alice (signed)" {
				t.Errorf("given_name = %q, want the signed userinfo's", res.Assertion.First("given_name"))
			}
		})
	}
}

// TestEntraMultiTenantIssuer: Entra ID's multi-tenant endpoints
// (/organizations/v2.0, /common/v2.0) name the issuer
// ".../{tenantid}/v2.0". That template is accepted only for those
// endpoints, with tenants (tenants_test.go); for any other issuer the
// refusal, at sign-in and in `caddy sso check` alike, says what to set.
func TestEntraMultiTenantIssuer(t *testing.T) {
	e := newEnv(t)
	e.idp.SetHooks(oidctest.Hooks{Discovery: func(m map[string]any) {
		m["issuer"] = e.idp.Issuer + "/{tenantid}/v2.0"
	}})
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "multi-tenant Microsoft Entra ID template") ||
			!strings.Contains(err.Error(), "https://login.microsoftonline.com/<tenant-id>/v2.0") ||
			!strings.Contains(err.Error(), "/organizations/v2.0 (or /common/v2.0) with tenants") {
			t.Errorf("%s: %v", what, err)
		}
	}
	err := e.p.Discover(context.Background())
	if codeOf(err) != idp.CodeMisconfigured {
		t.Fatalf("Discover = %v, want %s", err, idp.CodeMisconfigured)
	}
	check("sign-in", err)
	res, err := oidc.Probe(context.Background(), nil, e.idp.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	check("caddy sso check", res.IssuerErr)
}

// TestTokenEndpointOutage: a token endpoint failing rather than refusing
// (a 5xx, 429, no answer) is the IdP unavailable, not a refused code or
// client secret; the code exchange can be tried again with a new sign-in.
//
// An answer cut short mid-body is one too: a 200 whose body ends early (a
// reset), or stops until the client's timeout. golang.org/x/oauth2 reads
// the body itself and loses the read error's type; the token endpoint's
// client reads it first (wholeAnswers), keeping the client's timeout.
func TestTokenEndpointOutage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  http.HandlerFunc
		timeout time.Duration // the client's, when not newEnvAt's
	}{
		{"503", status(http.StatusServiceUnavailable, ""), 0},
		{"502 with an HTML page", status(http.StatusBadGateway, "<html>Bad gateway</html>", "Content-Type", "text/html"), 0},
		{"429 with Retry-After", status(http.StatusTooManyRequests, "", "Retry-After", "30"), 0},
		{"connection closed", hangUp, 0},
		{"connection closed mid-body", partAnswer(hangUp), 0},
		{"body stalls past the client's timeout", partAnswer(stall), 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var down atomic.Bool
			e, tr := newEnvAt(t, "", false, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if down.Load() && strings.HasSuffix(r.URL.Path, oidctest.PathToken) {
						tc.answer(w, r)
						return
					}
					h.ServeHTTP(w, r)
				})
			}, func(c *oidc.Config) {
				c.OfflineAccess = true
				if tc.timeout > 0 {
					c.HTTPClient.Timeout = tc.timeout
				}
			})
			b := browserVia(tr)
			signedIn := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
			wantCode(t, signedIn, "")
			down.Store(true)
			b = browserVia(tr)
			res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
			wantCode(t, res, oidc.CodeIdPUnavailable)
			if strings.Contains(res.Err, `""`) {
				t.Errorf("error quotes an empty OAuth error: %s", res.Err)
			}
			// A refresh meeting the outage keeps the grant, as before.
			_, err := e.p.Refresh(context.Background(), &idp.Tokens{IDToken: signedIn.Tokens.ID, RefreshToken: signedIn.Tokens.Refresh})
			if err == nil || errors.Is(err, idp.ErrGrantRevoked) || strings.Contains(err.Error(), `""`) {
				t.Errorf("refresh during the outage: %v", err)
			}
		})
	}
}

// TestTokenEndpointRefusal: an OAuth error response stays
// token_exchange_failed, naming the error and its description when the
// IdP gave one, and no empty quotes when it did not.
func TestTokenEndpointRefusal(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"error and description", `{"error":"invalid_client","error_description":"secret expired"}`,
			`token endpoint answered 401 Unauthorized: "invalid_client" "secret expired"`},
		{"error alone", `{"error":"invalid_client"}`, `token endpoint answered 401 Unauthorized: "invalid_client"`},
		{"no OAuth error", `{}`, `token endpoint answered 401 Unauthorized`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tr := newEnvAt(t, "", false, answerAt(oidctest.PathToken,
				status(http.StatusUnauthorized, tc.body, "Content-Type", "application/json")))
			b := browserVia(tr)
			res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
			wantCode(t, res, oidc.CodeTokenExchange)
			if !strings.HasSuffix(res.Err, tc.want) {
				t.Errorf("error %q, want it to end %q", res.Err, tc.want)
			}
		})
	}
}

// TestTokenAnswerUpToTheCap: the token endpoint's answers are read whole
// up to 1 MiB, what golang.org/x/oauth2 reads of them: one of exactly
// 1 MiB signs in, and one a byte longer fails as it did before that
// (oauth2 meets JSON cut at 1 MiB), token_exchange_failed, not an outage.
func TestTokenAnswerUpToTheCap(t *testing.T) {
	for _, tc := range []struct {
		size int
		want string
	}{
		{1 << 20, ""},
		{1<<20 + 1, oidc.CodeTokenExchange},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			e, tr := newEnvAt(t, "", false, padTokenAnswer(t, tc.size))
			b := browserVia(tr)
			wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), tc.want)
		})
	}
}

// padTokenAnswer makes the IdP's token answers size bytes long, with a
// field of padding.
func padTokenAnswer(t *testing.T, size int) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, oidctest.PathToken) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Errorf("token answer: %v", err)
			}
			m["padding"] = ""
			short, _ := json.Marshal(m)
			m["padding"] = strings.Repeat("x", size-len(short))
			body, _ := json.Marshal(m)
			if len(body) != size {
				t.Errorf("padded answer of %d bytes, want %d", len(body), size)
			}
			w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

// TestByteOrderMark: a discovery document, a JWKS and a userinfo answer
// served with a UTF-8 byte order mark (as some Windows-hosted IdPs do)
// are read.
func TestByteOrderMark(t *testing.T) {
	e, tr := newEnvAt(t, "", false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, oidctest.PathDiscovery) && !strings.HasSuffix(r.URL.Path, oidctest.PathJWKS) &&
				!strings.HasSuffix(r.URL.Path, oidctest.PathUserinfo) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(rec.Code)
			w.Write(append([]byte("\xef\xbb\xbf"), rec.Body.Bytes()...))
		})
	})
	e.idp.SetHooks(oidctest.Hooks{IDToken: noGivenName}) // userinfo is asked
	b := browserVia(tr)
	res := e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice"))
	wantCode(t, res, "")
	if got := res.Assertion.Attributes["given_name"]; len(got) != 1 || got[0] != "Alice" {
		t.Errorf("given_name %q, want userinfo's", got)
	}
}

// TestTokenAuthSetting: an IdP that registers one client authentication
// method per client and refuses the other (Auth0, PingOne), while its
// discovery lists both, refuses the Basic credentials sent by default;
// token_auth names the method it registered, and either is then used.
func TestTokenAuthSetting(t *testing.T) {
	for _, tc := range []struct {
		registered, setting, want string
	}{
		{"client_secret_post", "", oidc.CodeTokenExchange},
		{"client_secret_post", "client_secret_post", ""},
		{"client_secret_basic", "client_secret_basic", ""},
		{"client_secret_basic", "client_secret_post", oidc.CodeTokenExchange},
	} {
		t.Run(tc.registered+"/"+cmp.Or(tc.setting, "default"), func(t *testing.T) {
			e := newEnv(t, func(c *oidc.Config) { c.TokenAuth = tc.setting })
			e.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{e.rp.URL + "/callback"},
				AuthMethod: tc.registered})
			wantCode(t, e.login(newBrowser()), tc.want)
		})
	}
	// The setting beats discovery: Basic, as set, though discovery lists
	// only Post (the client is registered for Basic).
	t.Run("client_secret_basic/client_secret_basic, discovery lists only post", func(t *testing.T) {
		e := newEnv(t, func(c *oidc.Config) { c.TokenAuth = "client_secret_basic" })
		e.idp.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{e.rp.URL + "/callback"},
			AuthMethod: "client_secret_basic"})
		e.idp.SetHooks(oidctest.Hooks{Discovery: func(d map[string]any) {
			d["token_endpoint_auth_methods_supported"] = []string{"client_secret_post"}
		}})
		wantCode(t, e.login(newBrowser()), "")
	})
	if err := (oidc.Config{TokenAuth: "private_key_jwt"}).CheckSettings(func(string) bool { return false }); err == nil ||
		!strings.Contains(err.Error(), `token_auth "private_key_jwt": expected client_secret_basic or client_secret_post`) {
		t.Errorf("an unknown token_auth: %v", err)
	}
}
