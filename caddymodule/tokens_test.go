package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// tokenSeen is what the token-checking upstream reports about a request:
// the token headers it received, and whether the IdP accepts the access
// token (userinfo answers for it).
type tokenSeen struct {
	Access        string `json:"access"`
	Authorization string `json:"authorization"`
	IDToken       string `json:"id_token"`
	Valid         bool   `json:"valid"`
	Sub           string `json:"sub"`
}

// newTokenUpstream is an app that uses the access token it gets, as an
// app calling an API on the user's behalf would: it asks the IdP's
// userinfo endpoint with it.
func newTokenUpstream(t *testing.T, op *oidctest.Server) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := tokenSeen{Access: r.Header.Get("X-Forwarded-Access-Token"), Authorization: r.Header.Get("Authorization"),
			IDToken: r.Header.Get("X-Forwarded-Id-Token")}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, op.Issuer+oidctest.PathUserinfo, nil)
		req.Header.Set("Authorization", "Bearer "+seen.Access)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var claims struct {
				Sub string `json:"sub"`
			}
			seen.Valid = resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&claims) == nil
			seen.Sub = claims.Sub
			resp.Body.Close()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tokenGateway is a gateway whose route passes the access token (as
// X-Forwarded-Access-Token and Authorization: Bearer) and the ID token to
// the token-checking upstream; the IdP issues 60-second access tokens and,
// with offline_access, refresh tokens.
type tokenGateway struct {
	*caddytest.OIDC
	t *testing.T
}

func newTokenGateway(t *testing.T, margin string) *tokenGateway {
	t.Helper()
	o := caddytest.NewOIDC(t, "\t\t\tjit\n\t\t\toffline_access\n")
	o.IdP.SetAccessTokenTTL(time.Minute)
	up := newTokenUpstream(t, o.IdP)
	o.Sites = fmt.Sprintf("%s {\n\tsso test {\n\t\tpass_access_token\n\t\tpass_id_token\n\t\tset_authorization_header\n\t\ttoken_refresh_margin %s\n\t}\n\treverse_proxy %s\n}\n",
		o.GW.Base, margin, strings.TrimPrefix(up.URL, "http://"))
	return &tokenGateway{OIDC: o, t: t}
}

// seen sends an API request with the browser's session and decodes what
// the upstream received.
func (g *tokenGateway) seen(b *browser) tokenSeen {
	g.t.Helper()
	return decodeSeen(g.t, b.get(g.GW.Base+"/api", "Accept", "application/json"))
}

func decodeSeen(t *testing.T, resp *http.Response) tokenSeen {
	t.Helper()
	body := readBody(t, resp)
	var s tokenSeen
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("not the upstream's answer: %s %s", resp.Status, body)
	}
	return s
}

// TestUpstreamReceivesFreshTokenAfterExpiry: after the access token the
// session began with has expired, the upstream receives a fresh one that
// the IdP accepts. Once the sign-in is done, the IdP's clock jumps 57 s
// ahead, so that the 60-second access token A expires at the IdP 3 s after
// the sign-in and the test need not wait a minute; the gateway, counting
// the IdP's expires_in on its own clock with a 59 s margin, refreshes it
// from 1 s after the sign-in on, so it never passes on an expired token.
func TestUpstreamReceivesFreshTokenAfterExpiry(t *testing.T) {
	g := newTokenGateway(t, "59s")
	g.Start()
	b := newBrowser(t)
	a := decodeSeen(t, b.signIn(g.GW.Base+"/api", "ada", "ada-pw"))
	if a.Access == "" || !a.Valid || a.Sub != "sub-ada" || a.Authorization != "Bearer "+a.Access || strings.Count(a.IDToken, ".") != 2 {
		t.Fatalf("after sign-in the upstream saw %+v, want a valid access token, as Bearer too, and the ID token", a)
	}
	// On a loaded machine the sign-in's own request may come after the 1 s
	// margin and refresh already; count from here.
	refreshed := g.IdP.Refreshes()
	g.IdP.SetClock(func() time.Time { return time.Now().Add(57 * time.Second) })
	time.Sleep(3500 * time.Millisecond)
	if g.upstreamAccepts(a.Access) {
		t.Fatal("token A has not expired at the IdP")
	}
	fresh := g.seen(b)
	if fresh.Access == a.Access || !fresh.Valid || fresh.Sub != "sub-ada" || fresh.Authorization != "Bearer "+fresh.Access {
		t.Errorf("after A expired the upstream saw %+v, want a new token the IdP accepts", fresh)
	}
	if fresh.IDToken == a.IDToken || strings.Count(fresh.IDToken, ".") != 2 {
		t.Error("the upstream did not get the refreshed ID token")
	}
	if n := g.IdP.Refreshes() - refreshed; n != 1 {
		t.Errorf("%d refreshes after the sign-in, want 1", n)
	}
}

// upstreamAccepts asks the IdP's userinfo endpoint whether it takes a token.
func (g *tokenGateway) upstreamAccepts(accessToken string) bool {
	req, _ := http.NewRequest(http.MethodGet, g.IdP.Issuer+oidctest.PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestFiftyParallelRequestsRefreshOnce: when the access token comes within
// the margin of its expiry, 50 requests at once cause exactly one refresh
// at the IdP, and every one of them reaches the upstream with its token.
func TestFiftyParallelRequestsRefreshOnce(t *testing.T) {
	g := newTokenGateway(t, "50s")
	g.Start()
	b := newBrowser(t)
	a := decodeSeen(t, b.signIn(g.GW.Base+"/api", "ada", "ada-pw"))
	time.Sleep(10500 * time.Millisecond) // A is now within 50 s of its end
	var wg sync.WaitGroup
	seen := make([]tokenSeen, 50)
	for i := range seen {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/%d", g.GW.Base, i), nil)
			req.Header.Set("Accept", "application/json")
			resp, err := b.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			body := readBody(t, resp)
			if err := json.Unmarshal([]byte(body), &seen[i]); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("request %d: %s %s", i, resp.Status, body)
			}
		})
	}
	wg.Wait()
	if n := g.IdP.Refreshes(); n != 1 {
		t.Errorf("50 parallel requests caused %d refreshes at the IdP, want exactly 1", n)
	}
	for i, s := range seen {
		if s.Access == a.Access || s.Access != seen[0].Access || !s.Valid {
			t.Fatalf("request %d: upstream saw %q (valid %v), want the one refreshed token", i, s.Access, s.Valid)
		}
	}
}

// TestRevokedGrantEndsSession: once the IdP revoked the grant, the refresh
// it refuses ends the session: the request is treated as signed out (401
// for an API call, sign-in for a navigation), and the session is gone,
// audited.
func TestRevokedGrantEndsSession(t *testing.T) {
	g := newTokenGateway(t, "59s")
	g.Start()
	b := newBrowser(t)
	decodeSeen(t, b.signIn(g.GW.Base+"/api", "ada", "ada-pw"))
	if g.IdP.RevokeGrants("ada") == 0 {
		t.Fatal("nothing to revoke")
	}
	time.Sleep(1200 * time.Millisecond) // within the margin: the next request refreshes
	resp := b.get(g.GW.Base+"/api", "Accept", "application/json")
	if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the grant was revoked: %s %s, want 401", resp.Status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, g.GW.Base+"/page", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := b.noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), g.IdP.Issuer) {
		t.Errorf("navigation: %s to %q, want the IdP's sign-in", resp.Status, resp.Header.Get("Location"))
	}
	if got := auditReasons(t, store.EventSessionRevoked); !slices.Equal(got, []string{session.ReasonGrantRevoked}) {
		t.Errorf("session.revoked reasons = %v, want [%s]", got, session.ReasonGrantRevoked)
	}
	view(t, func(tx store.Tx) error {
		if n, _ := tx.SessionsBySubject("test", "sub-ada"); len(n) != 0 {
			t.Errorf("%d sessions left in the store", len(n))
		}
		return nil
	})
}

// tokenLogFilter is the log filter docs/security.md gives for DEBUG logs:
// reverse_proxy logs the headers of every proxied request at DEBUG, and
// Caddy redacts Authorization there but no other header.
const tokenLogFilter = `		format filter {
			wrap json
			fields {
				request>headers>X-Forwarded-Access-Token delete
				request>headers>X-Forwarded-Id-Token delete
			}
		}
`

// leakRun signs in through a route passing every token, has the tokens
// refreshed once, then refused (the grant revoked), and returns every token
// the IdP issued along the way.
func leakRun(t *testing.T, g *tokenGateway, b *browser) []string {
	t.Helper()
	a := decodeSeen(t, b.signIn(g.GW.Base+"/api", "ada", "ada-pw"))
	time.Sleep(1200 * time.Millisecond)
	fresh := g.seen(b)
	if fresh.Access == a.Access {
		t.Fatal("no refresh happened")
	}
	g.IdP.RevokeGrants("ada")
	time.Sleep(1200 * time.Millisecond)
	readBody(t, b.get(g.GW.Base+"/api", "Accept", "application/json"))
	// Two refresh tokens at least: the sign-in's and the refresh's. On a
	// loaded machine the sign-in's first request may itself come after
	// the margin and refresh once more; every one issued is searched.
	refresh := g.IdP.RefreshTokens()
	if len(refresh) < 2 {
		t.Fatalf("expected two refresh tokens at least, got %d", len(refresh))
	}
	return append([]string{a.Access, fresh.Access, a.IDToken, fresh.IDToken}, refresh...)
}

// findTokens reports every place in text where one of secrets (or an ID
// token's signature alone) appears, as the line around it with the token
// elided.
func findTokens(text string, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		needles := []string{s}
		if i := strings.LastIndexByte(s, '.'); i > 0 {
			needles = append(needles, s[i+1:])
		}
		for _, n := range needles {
			for i := strings.Index(text, n); i >= 0; {
				found = append(found, lineAround(text, i, n))
				next := strings.Index(text[i+len(n):], n)
				if next < 0 {
					break
				}
				i += len(n) + next
			}
		}
	}
	return found
}

// TestTokensNeverLeak: no access, refresh or ID token appears in Caddy's
// log at DEBUG (with the filter docs/security.md gives for reverse_proxy's
// DEBUG lines), in the audit trail, in a cookie, or unsealed in the store
// file, through a sign-in, a refresh and a revoked refresh.
func TestTokensNeverLeak(t *testing.T) {
	g := newTokenGateway(t, "59s")
	cfg := g.Caddyfile()
	filtered := strings.Replace(cfg, "\t\tlevel DEBUG\n", "\t\tlevel DEBUG\n"+tokenLogFilter, 1)
	if filtered == cfg {
		t.Fatal("the harness's log block changed: cannot add the filter")
	}
	g.GW.Start(filtered)
	b := newBrowser(t)
	var cookies []string
	b.client.Transport = cookieRecorder{&cookies}
	secrets := leakRun(t, g, b)

	var audit strings.Builder
	view(t, func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Limit: 1000})
		for _, e := range events {
			_ = json.NewEncoder(&audit).Encode(e)
		}
		return err
	})
	db, err := os.ReadFile(g.GW.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	log := g.GW.Logs()
	for _, want := range []string{"upstream roundtrip", "session ended: the identity provider refused to refresh its tokens"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q: is it at DEBUG?", want)
		}
	}
	for where, text := range map[string]string{"log": log, "audit trail": audit.String(),
		"cookies": strings.Join(cookies, "\n"), "store file": string(db)} {
		for _, line := range findTokens(text, secrets) {
			t.Errorf("a token appears in the %s, in: %.600s", where, line)
		}
	}
}

// TestTokensInUnfilteredDebugLog pins down what the log filter above is
// for: without it, the only log lines that hold a token are reverse_proxy's
// DEBUG "upstream roundtrip" lines, in the token headers (its
// Authorization is redacted). Everything caddy-sso logs itself is free of
// them.
func TestTokensInUnfilteredDebugLog(t *testing.T) {
	g := newTokenGateway(t, "59s")
	g.Start()
	secrets := leakRun(t, g, newBrowser(t))
	for _, line := range findTokens(g.GW.Logs(), secrets) {
		var entry struct {
			Logger  string `json:"logger"`
			Msg     string `json:"msg"`
			Request struct {
				Headers map[string][]string `json:"headers"`
			} `json:"request"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Logger != "http.handlers.reverse_proxy" ||
			entry.Msg != "upstream roundtrip" || !slices.Equal(entry.Request.Headers["Authorization"], []string{"REDACTED"}) {
			t.Errorf("a token appears outside reverse_proxy's DEBUG headers, in: %.600s", line)
		}
	}
	if !strings.Contains(g.GW.Logs(), "tokens passed upstream in X-Forwarded-Access-Token, X-Forwarded-Id-Token appear in reverse_proxy's DEBUG log") {
		t.Error("no warning that DEBUG logging shows the token headers")
	}
}

// lineAround is the line of text at i, with the token there elided, so
// that a failure says where without repeating the secret.
func lineAround(text string, i int, token string) string {
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		end = len(text) - i
	}
	return strings.ReplaceAll(text[start:i+end], token, "<token>")
}

// cookieRecorder keeps every Set-Cookie and Cookie header the browser
// exchanges with anyone.
type cookieRecorder struct{ into *[]string }

func (c cookieRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	*c.into = append(*c.into, req.Header.Values("Cookie")...)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		*c.into = append(*c.into, resp.Header.Values("Set-Cookie")...)
	}
	return resp, err
}

// TestTokenHeadersStripped: whatever the client sends in a token header,
// in any spelling, never reaches the upstream: on a route that passes no
// token (which leaves Authorization alone), and on one that does, where
// the gateway's values replace the client's, Authorization included, and
// a Connection header cannot remove them.
func TestTokenHeadersStripped(t *testing.T) {
	o := caddytest.NewOIDC(t, "\t\t\tjit\n")
	up := newEchoUpstream(t)
	o.Sites = fmt.Sprintf("%s {\n\thandle /plain/* {\n\t\tsso test\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\tsso test {\n\t\t\tpass_access_token X-App-Token\n\t\t\tset_authorization_header\n\t\t}\n\t\treverse_proxy %s\n\t}\n}\n",
		o.GW.Base, up.hostPort(), up.hostPort())
	o.Start()
	b := newBrowser(t)
	readBody(t, b.signIn(o.GW.Base+"/", "ada", "ada-pw"))
	spoofed := []string{"X-Forwarded-Access-Token", "spoofed-at", "X_Forwarded_Access_Token", "spoofed-at2",
		"X-Forwarded-Id-Token", "spoofed-id", "x-forwarded-id-token", "spoofed-id2", "X-Auth-Request-Access-Token", "spoofed-at3"}

	plain := upstreamSaw(t, b.get(o.GW.Base+"/plain/x", append(spoofed, "Authorization", "Basic YWRhOnB3")...))
	for _, h := range []string{"X-Forwarded-Access-Token", "X_Forwarded_Access_Token", "X-Forwarded-Id-Token", "X-Auth-Request-Access-Token"} {
		if v := plain.header(h); v != "" {
			t.Errorf("route without tokens: upstream got %s: %q", h, v)
		}
	}
	if plain.header("Authorization") != "Basic YWRhOnB3" {
		t.Errorf("route without set_authorization_header changed Authorization: %q", plain.header("Authorization"))
	}

	passing := upstreamSaw(t, b.get(o.GW.Base+"/x", append(spoofed, "Authorization", "Basic YWRhOnB3",
		"X-App-Token", "spoofed-app", "X_App_Token", "spoofed-app2", "Connection", "Authorization, X-App-Token")...))
	at := passing.header("X-App-Token")
	if at == "" || strings.HasPrefix(at, "spoofed") || passing.header("Authorization") != "Bearer "+at {
		t.Errorf("route passing tokens: X-App-Token %q, Authorization %q", at, passing.header("Authorization"))
	}
	for h, v := range passing.Headers {
		if strings.Contains(strings.Join(v, ","), "spoofed") || strings.Contains(strings.Join(v, ","), "Basic") {
			t.Errorf("a spoofed value reached the upstream: %s: %v", h, v)
		}
	}
	if passing.header("X-Forwarded-Access-Token") != "" || passing.header("X-Forwarded-Id-Token") != "" {
		t.Error("the route passed tokens it was not told to")
	}
}

// TestTokensKeptOnlyForRoutesThatPassThem: without a route that passes
// tokens, a session keeps its ID token alone, whatever offline_access
// says; a route added later signs the person in again to get them.
func TestTokensKeptOnlyForRoutesThatPassThem(t *testing.T) {
	g := newTokenGateway(t, "1m")
	sites := g.Sites
	up := newEchoUpstream(t)
	g.Sites = fmt.Sprintf("%s {\n\tsso test\n\treverse_proxy %s\n}\n", g.GW.Base, up.hostPort())
	g.Start()
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(g.GW.Base+"/", "ada", "ada-pw"))
	var hash string
	view(t, func(tx store.Tx) error {
		ss, err := tx.SessionsBySubject("test", "sub-ada")
		if len(ss) == 1 {
			hash = ss[0].Hash
		}
		return err
	})
	tok, err := sessionsOf(t).Tokens(context.Background(), hash)
	if err != nil || tok == nil || tok.IDToken == "" || tok.AccessToken != "" || tok.RefreshToken != "" {
		t.Fatalf("tokens kept without a route passing them: %v, %v", tok, err)
	}
	if !strings.Contains(g.GW.Logs(), "offline_access: no route passes this IdP's tokens") {
		t.Error("no warning about offline_access without a route passing tokens")
	}

	g.Sites = sites
	g.GW.Reload(g.Caddyfile())
	resp := b.get(g.GW.Base+"/api", "Accept", "application/json")
	if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session without an access token on a route passing it: %s %s, want 401", resp.Status, body)
	}
	s := decodeSeen(t, b.signIn(g.GW.Base+"/api", "ada", "ada-pw"))
	if !s.Valid {
		t.Errorf("after signing in again the upstream saw %+v", s)
	}
}

// TestRefreshTokenKeptOnlyWithOfflineAccess: a route passes tokens, and
// the IdP (like Keycloak) issues a refresh token without being asked; the
// IdP's block lacks offline_access, so the session keeps the access token
// but not the refresh token, and offline_access is not requested.
func TestRefreshTokenKeptOnlyWithOfflineAccess(t *testing.T) {
	g := newTokenGateway(t, "1m")
	g.IdPBlock = "\t\t\tjit\n"
	g.IdP.SetRefreshAlways(true)
	g.Start()
	b := newBrowser(t)
	resp, err := b.noRedirects().Do(func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, g.GW.Base+"/page", nil)
		req.Header.Set("Accept", "text/html")
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); strings.Contains(loc, "offline_access") || !strings.HasPrefix(loc, g.IdP.Issuer) {
		t.Errorf("sign-in went to %q, want the IdP without offline_access", loc)
	}
	if s := decodeSeen(t, b.signIn(g.GW.Base+"/api", "ada", "ada-pw")); !s.Valid {
		t.Fatalf("upstream saw %+v", s)
	}
	if len(g.IdP.RefreshTokens()) != 1 {
		t.Fatal("the IdP issued no refresh token")
	}
	var hash string
	view(t, func(tx store.Tx) error {
		ss, err := tx.SessionsBySubject("test", "sub-ada")
		if len(ss) > 0 {
			hash = ss[len(ss)-1].Hash
		}
		return err
	})
	tok, err := sessionsOf(t).Tokens(context.Background(), hash)
	if err != nil || tok == nil || tok.AccessToken == "" || tok.RefreshToken != "" {
		t.Errorf("kept %v, %v: want the access token and no refresh token", tok, err)
	}
}

// sessionsOf is the running app's session manager.
func sessionsOf(t *testing.T) *session.Manager {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("sso")
	if err != nil {
		t.Fatal(err)
	}
	return app.(*caddymodule.App).Sessions()
}
