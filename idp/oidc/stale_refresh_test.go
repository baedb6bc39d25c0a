package oidc_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
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

// gatedIdP is the test IdP with one endpoint that, once shut, holds every
// request until released (or until the request is cancelled): an IdP
// that accepts connections and does not answer. Tests tell "served at
// once" from "waited for the IdP" by whether the held request is still
// held when the caller returns, never by a wall-clock bound.
type gatedIdP struct {
	*oidctest.Server
	path    string
	shut    atomic.Bool
	hits    atomic.Int32  // requests to path
	held    atomic.Int32  // requests to path held now
	arrived chan struct{} // one value per request held
	aborted chan struct{} // one value per held request the client cancelled
	release chan struct{}
}

func newGatedIdP(t *testing.T, path string) *gatedIdP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := oidctest.NewServer("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedIdP{Server: srv, path: path, arrived: make(chan struct{}, 16), aborted: make(chan struct{}, 16), release: make(chan struct{})}
	ts := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(g.serve)}}
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(g.open) // before ts.Close, which waits for held requests
	return g
}

func (g *gatedIdP) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == g.path {
		g.hits.Add(1)
		if g.shut.Load() {
			g.held.Add(1)
			defer g.held.Add(-1)
			g.arrived <- struct{}{}
			select {
			case <-g.release:
			case <-r.Context().Done():
				g.aborted <- struct{}{}
				return
			}
		}
	}
	g.ServeHTTP(w, r)
}

// open releases the held requests and holds no more.
func (g *gatedIdP) open() {
	if g.shut.CompareAndSwap(true, false) {
		close(g.release)
	}
}

// waitHeld waits until a request to the gated path is being held.
func (g *gatedIdP) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no request reached the gated endpoint")
	}
}

// closeEnds closes e's provider while g holds a background refresh, and
// checks that Close cancels it and returns once it has ended: no goroutine
// of the provider outlives it. The provider's client waits longer than
// Close is given (slowClient), so only cancelling ends the held request
// in time.
func closeEnds(t *testing.T, e *env, g *gatedIdP) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while the IdP held the background refresh: it was not cancelled")
	}
	// A goroutine that has run its deferred calls (the WaitGroup's Done
	// among them) may still be on its way out when Close returns: it is
	// given a second to go. One still refreshing stays, held by g.
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "oidc.(*background).run") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a background refresh outlived Close:\n%s", stacks)
			break
		}
	}
	select {
	case <-g.aborted:
	case <-time.After(20 * time.Second):
		t.Error("the IdP never saw the background refresh cancelled")
	}
}

// slowClient gives the provider a client that waits 30 s for the IdP.
func slowClient(c *oidc.Config) { c.HTTPClient = &http.Client{Timeout: 30 * time.Second} }

// TestStaleDiscoveryServedWhileRefreshing: once the discovery document is
// past its TTL and the IdP hangs, sign-in starts still get the document in
// hand at once; one refresh (not one per caller) runs in the background,
// and Close ends it.
func TestStaleDiscoveryServedWhileRefreshing(t *testing.T) {
	g := newGatedIdP(t, oidctest.PathDiscovery)
	core, logs := observer.New(zapcore.DebugLevel)
	e := startEnv(t, g.Server, slowClient, func(c *oidc.Config) { c.Logger = zap.New(core) })
	wantCode(t, e.login(newBrowser()), "")
	e.clock.Add(25 * time.Hour) // past discoveryTTL
	g.shut.Store(true)

	for i := range 3 {
		resp, err := e.startLogin(newBrowser(), "/")
		if err != nil || resp.StatusCode != http.StatusFound {
			t.Fatalf("sign-in start %d: %v %v", i, err, resp)
		}
		if i == 0 {
			g.waitHeld(t) // the background refresh reached the IdP
		}
		if g.held.Load() != 1 {
			t.Fatalf("sign-in start %d returned once the discovery refetch was no longer held: it waited for the IdP with a document in hand", i)
		}
	}
	if n := g.hits.Load(); n != 2 {
		t.Errorf("discovery requests = %d, want 2 (the first fetch, and one background refresh for every caller)", n)
	}
	closeEnds(t, e, g)
	// Cancelled by Close, not failed: nothing to tell the operator.
	if n := logs.FilterMessageSnippet("refresh failed").Len(); n != 0 {
		t.Errorf("%d refresh-failed lines for a refresh Close cancelled: %v", n, logs.All())
	}
}

// TestStaleDiscoveryTokenRefresh: a route that passes tokens refreshes
// them on a signed-in person's request; with the discovery document past
// its TTL and the IdP's discovery endpoint hanging, the refresh uses the
// document in hand instead of waiting for the refetch.
func TestStaleDiscoveryTokenRefresh(t *testing.T) {
	g := newGatedIdP(t, oidctest.PathDiscovery)
	e := startEnv(t, g.Server, slowClient, func(c *oidc.Config) { c.OfflineAccess = true })
	g.SetClock(e.clock.Now)
	res := e.login(newBrowser())
	wantCode(t, res, "")
	e.clock.Add(25 * time.Hour)
	g.shut.Store(true)

	out, err := e.p.Refresh(context.Background(), &idp.Tokens{IDToken: res.Tokens.ID, AccessToken: res.Tokens.Access, RefreshToken: res.Tokens.Refresh})
	if err != nil || out.AccessToken == "" {
		t.Fatalf("refresh: %v", err)
	}
	g.waitHeld(t)
	if g.held.Load() != 1 {
		t.Fatal("the token refresh returned once the discovery refetch was no longer held: it waited for the IdP with a document in hand")
	}
	closeEnds(t, e, g)
}

// TestAgedJWKSRefreshedInBackground: once the JWKS is past keysMaxAge, a
// callback whose ID token a cached key verifies is answered without
// waiting for the JWKS refetch, which runs in the background and ends
// with Close.
func TestAgedJWKSRefreshedInBackground(t *testing.T) {
	g := newGatedIdP(t, oidctest.PathJWKS)
	core, logs := observer.New(zapcore.DebugLevel)
	e := startEnv(t, g.Server, slowClient, func(c *oidc.Config) { c.Logger = zap.New(core) })
	g.SetClock(e.clock.Now)
	wantCode(t, e.login(newBrowser()), "")
	e.clock.Add(25 * time.Hour) // past keysMaxAge (and discoveryTTL)
	g.shut.Store(true)

	b := newBrowser()
	wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), "")
	g.waitHeld(t)
	if g.held.Load() != 1 {
		t.Fatal("the callback returned once the JWKS refetch was no longer held: it waited for the IdP although the token verified")
	}
	// A second callback meanwhile starts no second refresh.
	b = newBrowser()
	wantCode(t, e.mustCallback(b, e.authorize(b, e.begin(b, "/"), "alice")), "")
	if n := g.hits.Load(); n != 2 {
		t.Errorf("JWKS requests = %d, want 2 (the first fetch and one background refresh)", n)
	}
	closeEnds(t, e, g)
	// Cancelled by Close, not failed: nothing to tell the operator.
	if n := logs.FilterMessageSnippet("refresh failed").Len(); n != 0 {
		t.Errorf("%d refresh-failed lines for a refresh Close cancelled: %v", n, logs.All())
	}
}

// TestBackgroundRefreshFailureLogged: a day after the first fetch, the
// discovery document and the JWKS are fetched again in the background,
// and a failure keeps the last good copy, which no caller sees: the WARN
// line (worded as the SAML side's metadata refresh line) and the fetch
// time in RefreshHealth (the caddy_sso_oidc_* gauges) are what tell the
// operator that the IdP's new issuer or endpoints, or its withdrawal of a
// key, are not taken up. A failure that repeats (next retry, 31 s on)
// goes to DEBUG within the minute (logbudget).
func TestBackgroundRefreshFailureLogged(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
		msg  string
		want string // in the logged error
		fail func(e *env)
		use  func(t *testing.T, e *env)
		at   func(oidc.RefreshHealth) time.Time
	}{
		{
			name: "discovery for another issuer", path: oidctest.PathDiscovery,
			msg: "oidc discovery refresh failed; keeping the last good copy", want: "moved.example.com",
			fail: func(e *env) {
				e.idp.SetHooks(oidctest.Hooks{Discovery: func(doc map[string]any) { doc["issuer"] = "https://moved.example.com/oauth2/default" }})
			},
			// Served the stale copy at once, refreshed in the background.
			use: func(t *testing.T, e *env) {
				if _, err := e.startLogin(newBrowser(), "/"); err != nil {
					t.Fatal(err)
				}
			},
			at: func(h oidc.RefreshHealth) time.Time { return h.DiscoveryLoaded },
		},
		{
			name: "JWKS unavailable", path: oidctest.PathJWKS,
			msg: "oidc jwks refresh failed; keeping the last good keys", want: "503",
			fail: func(e *env) { e.idp.SetUnavailable(true, oidctest.PathJWKS) },
			// The cached key verifies; the aged keys are fetched again
			// in the background.
			use: func(t *testing.T, e *env) { wantCode(t, e.login(newBrowser()), "") },
			at:  func(h oidc.RefreshHealth) time.Time { return h.KeysLoaded },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			e := newEnv(t, func(c *oidc.Config) { c.Logger = zap.New(core) })
			e.idp.SetClock(e.clock.Now) // tokens issued on the relying party's clock
			wantCode(t, e.login(newBrowser()), "")
			fetched := e.clock.Now()
			tc.fail(e)
			e.clock.Add(25 * time.Hour) // past discoveryTTL and keysMaxAge
			lines := waitLogged(t, logs, tc.msg, 1, func() { tc.use(t, e) })
			if l := lines[0]; l.Level != zapcore.WarnLevel || !strings.Contains(l.ContextMap()["error"].(string), tc.want) || l.ContextMap()["idp"] != "test" {
				t.Errorf("%s %q %v, want WARN naming idp test and an error with %q", l.Level, l.Message, l.ContextMap(), tc.want)
			}
			if got := tc.at(e.p.RefreshHealth()); !got.Equal(fetched) {
				t.Errorf("RefreshHealth: %v, want the last good fetch's %v", got, fetched)
			}
			e.clock.Add(31 * time.Second) // past discoveryRetry and the JWKS refresh limit
			lines = waitLogged(t, logs, tc.msg, 2, func() { tc.use(t, e) })
			if lines[1].Level != zapcore.DebugLevel {
				t.Errorf("the same failure 31 s later: %s, want DEBUG within the minute", lines[1].Level)
			}
			if n := e.idp.Requests(tc.path); n != 3 {
				t.Errorf("%d fetches of %s, want 3 (the first, two refreshes)", n, tc.path)
			}
		})
	}
}

// waitLogged calls use, which starts a background refresh, until n lines
// of msg have been logged (the refresh logs after the request that started
// it has been answered, and a use while the previous refresh is still
// ending starts none), and returns them. Once failed, a refresh is not
// tried again before the clock moves (discoveryRetry, the JWKS refresh
// limit), so the uses while waiting fetch nothing more.
func waitLogged(t *testing.T, logs *observer.ObservedLogs, msg string, n int, use func()) []observer.LoggedEntry {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		use()
		for range 20 {
			if lines := logs.FilterMessage(msg).All(); len(lines) >= n {
				return lines
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines %q, want %d; logged: %v", logs.FilterMessage(msg).Len(), msg, n, logs.All())
		}
	}
}

// TestBackgroundRefreshTakesUpTheNewCopies: a background refresh that
// succeeds replaces the day-old discovery document and keys (their fetch
// times in RefreshHealth, the caddy_sso_oidc_* gauges, move on) and logs
// no failure: an operator alerting on either sees only real ones.
func TestBackgroundRefreshTakesUpTheNewCopies(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newEnv(t, func(c *oidc.Config) { c.Logger = zap.New(core) })
	e.idp.SetClock(e.clock.Now)
	wantCode(t, e.login(newBrowser()), "")
	e.clock.Add(25 * time.Hour) // past discoveryTTL and keysMaxAge
	now := e.clock.Now()
	// Served the day-old copies at once, each refreshed in the background.
	wantCode(t, e.login(newBrowser()), "")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h := e.p.RefreshHealth()
		if h.DiscoveryLoaded.Equal(now) && h.KeysLoaded.Equal(now) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RefreshHealth %+v, want both fetched again at %v: the refreshed copies were not taken up", h, now)
		}
	}
	if err := e.p.Close(); err != nil { // the refreshes have ended, their lines written
		t.Fatal(err)
	}
	if n := logs.FilterMessageSnippet("refresh failed").Len(); n != 0 {
		t.Errorf("%d refresh-failed lines after refreshes that succeeded: %v", n, logs.All())
	}
}

// TestBackgroundRefreshFailuresOfBothLogged: the discovery document and
// the keys failing to refresh within the same minute are two WARN lines,
// one per message: the log budget of one does not hold back the other.
func TestBackgroundRefreshFailuresOfBothLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newEnv(t, func(c *oidc.Config) { c.Logger = zap.New(core) })
	e.idp.SetClock(e.clock.Now)
	wantCode(t, e.login(newBrowser()), "")
	e.idp.SetHooks(oidctest.Hooks{Discovery: func(doc map[string]any) { doc["issuer"] = "https://moved.example.com/oauth2/default" }})
	e.idp.SetUnavailable(true, oidctest.PathJWKS)
	e.clock.Add(25 * time.Hour) // past discoveryTTL and keysMaxAge
	use := func() { wantCode(t, e.login(newBrowser()), "") }
	for _, msg := range []string{"oidc discovery refresh failed; keeping the last good copy", "oidc jwks refresh failed; keeping the last good keys"} {
		if l := waitLogged(t, logs, msg, 1, use)[0]; l.Level != zapcore.WarnLevel {
			t.Errorf("%q: %s, want WARN: the first failure of its kind this minute", msg, l.Level)
		}
	}
}

// TestBackgroundRefreshFailureWordsAnUntrustedCertificate: a background
// refresh refused by the IdP's TLS certificate, which this host stopped
// trusting (a CA replaced, a certificate renewed under another), is logged
// with the fix, as sign-in words it, not as the bare x509 error.
func TestBackgroundRefreshFailureWordsAnUntrustedCertificate(t *testing.T) {
	srv, ts := tlsIdP(t, "127.0.0.1")
	var untrusted atomic.Bool
	trusting, plain := ts.Client().Transport, http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(plain.CloseIdleConnections)
	client := &http.Client{Timeout: 10 * time.Second, Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		if untrusted.Load() {
			return plain.RoundTrip(r)
		}
		return trusting.RoundTrip(r)
	})}
	core, logs := observer.New(zapcore.DebugLevel)
	e := startEnv(t, srv, func(c *oidc.Config) { c.HTTPClient, c.Logger = client, zap.New(core) })
	if err := e.p.Discover(context.Background()); err != nil { // trusted then
		t.Fatal(err)
	}
	untrusted.Store(true)
	e.clock.Add(25 * time.Hour) // past discoveryTTL
	lines := waitLogged(t, logs, "oidc discovery refresh failed; keeping the last good copy", 1, func() {
		if _, err := e.startLogin(newBrowser(), "/"); err != nil {
			t.Fatal(err)
		}
	})
	if msg, _ := lines[0].ContextMap()["error"].(string); !strings.Contains(msg, idp.UntrustedCertificateFix) {
		t.Errorf("logged error %q, want the fix %q", msg, idp.UntrustedCertificateFix)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
