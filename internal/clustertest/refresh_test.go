package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/oidc/oidctest"
	"github.com/caddy-sso/caddy-sso/internal/caddyproc"
	"github.com/caddy-sso/caddy-sso/internal/caddytest"
	"github.com/caddy-sso/caddy-sso/internal/testport"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// refreshCaddyfile is instanceCaddyfile's counterpart for a route that
// passes the access token upstream, refreshed with offline_access; its
// margin, one second under the access tokens' minute, makes each token due
// a second after it was issued.
const refreshCaddyfile = `{
` + instanceGlobals + `	sso {
		store postgres {env.SSO_DATABASE_URL}
		idp oidc oidc {
			issuer %s
			client_id %s
			client_secret {env.OIDC_CLIENT_SECRET}
			jit
			offline_access
		}
	}
}

http://127.0.0.1:{$SSO_HTTP_PORT} {
	handle {
		sso oidc {
			pass_access_token
			token_refresh_margin 59s
		}
		reverse_proxy %s
	}
}
`

// reuseDetectingIdP is the test OpenID provider, which rotates refresh
// tokens, with reuse detection in front of its token endpoint (Auth0 with
// rotation, Okta with a grace period of 0): a refresh token presented
// again after a refresh it answered revokes the grant, the newest refresh
// token included. Its refresh answers take answerDelay after the rotation,
// as over a network: long enough for another instance to find the token
// due meanwhile.
type reuseDetectingIdP struct {
	*oidctest.Server
	mu      sync.Mutex
	spent   map[string]bool
	used    []string
	replays int
}

const answerDelay = 300 * time.Millisecond

func startReuseDetectingIdP(t *testing.T) *reuseDetectingIdP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := oidctest.NewServer("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := &reuseDetectingIdP{Server: s, spent: map[string]bool{}}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *reuseDetectingIdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != oidctest.PathToken || r.Method != http.MethodPost {
		p.Server.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	if form.Get("grant_type") != "refresh_token" {
		p.Server.ServeHTTP(w, r)
		return
	}
	rt := form.Get("refresh_token")
	p.mu.Lock()
	p.used = append(p.used, rt)
	replay := p.spent[rt]
	if replay {
		p.replays++
	}
	p.mu.Unlock()
	if replay {
		p.RevokeGrants("ada")
	}
	rec := httptest.NewRecorder()
	p.Server.ServeHTTP(rec, r)
	if rec.Code == http.StatusOK {
		p.mu.Lock()
		p.spent[rt] = true
		p.mu.Unlock()
	}
	time.Sleep(answerDelay)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (p *reuseDetectingIdP) refreshes() (used int, replays int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used), p.replays
}

// TestTokenRefreshOnceAcrossInstances: round after round, parallel
// requests of one session reach both instances the moment its access
// token is due, at an IdP with refresh-token reuse detection. One instance
// claims each refresh in the database and the other waits for its tokens:
// the IdP sees each refresh token once, every request gets 200 with a
// token the IdP accepts, and the session is never signed out. Before the
// claim, both instances presented the same refresh token, and the IdP
// revoked the grant at the first round.
func TestTokenRefreshOnceAcrossInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin, err := caddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	op := startReuseDetectingIdP(t)
	op.SetAccessTokenTTL(time.Minute)
	up := caddytest.NewEchoUpstream(t)
	ports := []int{testport.For(t), testport.For(t)}
	// The site's host is the first instance's; requests to the other
	// carry the same session cookie, as behind a balancer.
	c := &cluster{t: t, dsn: dsn, lbAddr: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	c.base = "http://" + c.lbAddr
	op.RegisterClient(oidctest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: []string{c.base + "/.sso/oidc/oidc/callback"}})
	op.AddUser("ada", "ada-pw", map[string]any{"sub": "sub-ada", "given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.com", "email_verified": true})
	caddyfile := fmt.Sprintf(refreshCaddyfile, op.Issuer, clientID, up.HostPort())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var insts []*instance
	for i, port := range ports {
		name := fmt.Sprintf("i%d", i)
		dir := filepath.Join(t.TempDir(), name)
		p, err := caddyproc.Start(bin, name, dir, caddyfile,
			fmt.Sprintf("SSO_HTTP_PORT=%d", port), fmt.Sprintf("SSO_ADMIN_PORT=%d", testport.For(t)),
			"SSO_DATA="+dir, "SSO_DATABASE_URL="+dsn, "OIDC_CLIENT_SECRET="+clientSecret)
		if err != nil {
			t.Fatal(err)
		}
		in := &instance{name: name, addr: fmt.Sprintf("127.0.0.1:%d", port), proc: p}
		t.Cleanup(func() {
			p.Stop(10 * time.Second)
			if t.Failed() {
				t.Logf("caddy %s log:\n%s", name, tail(readFile(filepath.Join(dir, "caddy.log")), 30))
			}
		})
		if err := p.WaitServing(ctx, in.URL("/.sso/whoami"), http.StatusUnauthorized); err != nil {
			t.Fatal(err)
		}
		insts = append(insts, in)
	}
	br := c.newBrowser(t)
	caddytest.UpstreamSaw(t, br.SignIn(c.base+"/api", "ada", "ada-pw"))
	cookie := br.sessionCookie()

	get := func(in *instance, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, in.URL(path), nil)
		req.Header.Set("Accept", "application/json")
		req.AddCookie(&http.Cookie{Name: "sso_session", Value: cookie})
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var e caddytest.Echoed
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &e) != nil {
			return resp.StatusCode, string(raw)
		}
		return resp.StatusCode, e.Header("X-Forwarded-Access-Token")
	}
	const rounds, perInstance = 4, 4
	// A token is due one second after its refresh (the margin): a round
	// that takes longer, on a loaded machine, may rightly refresh again.
	const dueAfter = time.Second
	for r := range rounds {
		time.Sleep(dueAfter + 200*time.Millisecond) // the token is due
		before, _ := op.refreshes()
		start := time.Now()
		var wg sync.WaitGroup
		for _, in := range insts {
			for j := range perInstance {
				wg.Go(func() {
					if code, got := get(in, fmt.Sprintf("/api/%d/%s/%d", r, in.name, j)); code != http.StatusOK {
						t.Errorf("round %d, %s: %d %.200s", r, in.name, code, got)
					}
				})
			}
		}
		wg.Wait()
		took := time.Since(start)
		after, _ := op.refreshes()
		t.Logf("round %d: answered within %v, %d refreshes", r, took.Round(time.Millisecond), after-before)
		if n := after - before; n == 0 || n > 1 && took < dueAfter {
			t.Errorf("round %d: the IdP got %d refreshes in %v; want one (more only past %v, when the new token is due too)", r, n, took, dueAfter)
		}
	}
	if used, replays := op.refreshes(); replays != 0 {
		t.Errorf("the IdP got %d refreshes, %d of them replaying a spent refresh token; want none replayed", used, replays)
	}
	code, at := get(insts[1], "/api/after")
	if code != http.StatusOK {
		t.Fatalf("after the rounds: %d %.200s", code, at)
	}
	if !acceptedBy(op.Server, at) {
		t.Errorf("the access token passed after the rounds is refused by the IdP's userinfo endpoint")
	}
	var reasons []string
	err = c.db().View(context.Background(), func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{Type: store.EventSessionRevoked})
		for _, e := range ev {
			reasons = append(reasons, e.Reason)
		}
		return err
	})
	if err != nil || len(reasons) != 0 {
		t.Errorf("session.revoked %v (%v), want none", reasons, err)
	}
}

// acceptedBy asks the OpenID provider's userinfo endpoint whether it takes
// the access token at.
func acceptedBy(op *oidctest.Server, at string) bool {
	req, _ := http.NewRequest(http.MethodGet, op.Issuer+oidctest.PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
